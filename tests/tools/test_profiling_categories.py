"""Kernel categories from real vendor kernel names, whatever their case, and the rules file they come from."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from arbor.tools.profiling.categorize import categories, categorize, parse_rules, words

KERNELS = tomllib.loads((Path(__file__).parent.parent / "fixtures" / "profiles" / "kernel_names.toml").read_text())[
    "kernel"]


@pytest.mark.parametrize("kernel", KERNELS, ids=[k["name"][:70] for k in KERNELS])
def test_every_real_kernel_name_gets_its_category(kernel: dict[str, str]) -> None:
    assert categorize(kernel["name"]) == kernel["category"], kernel["source"]


def test_the_real_names_cover_every_gpu_category_and_cite_a_source() -> None:
    assert {k["category"] for k in KERNELS} == set(categories()) - {"host_idle"}
    assert all(k["source"].strip() for k in KERNELS)


@pytest.mark.parametrize(("name", "split"), [
    ("ck_tile::FusedMoeGemmKernel", "ck_tile::fused_moe_gemm_kernel"),
    ("flashinfer::norm::FusedAddRMSNormKernel", "flashinfer::norm::fused_add_rms_norm_kernel"),
    ("flashinfer::BatchPrefillWithPagedKVCacheKernel", "flashinfer::batch_prefill_with_paged_kv_cache_kernel"),
    ("flashinfer::sampling::TopKTopPSamplingFromProbKernel",
     "flashinfer::sampling::top_k_top_p_sampling_from_prob_kernel"),
    ("ck_tile::Rmsnorm2dFwd", "ck_tile::rmsnorm2d_fwd"),
    ("triton_red_fused_add_mean_mul_pow_rsqrt_0", "triton_red_fused_add_mean_mul_pow_rsqrt_0"),
])
def test_words_split_camel_case_and_acronyms(name: str, split: str) -> None:
    assert words(name) == split


def test_categories_keep_their_display_order() -> None:
    # The simulators draw categories from this list: reordering it changes every generated stack.
    assert categories() == ["communication", "moe", "attention", "gemm", "norm_elementwise", "memcpy", "sampling",
                            "host_idle"]


@pytest.mark.parametrize(("text", "message"), [
    ('[[rule]]\ncategory = "gemm"\npatterns = ["gemm"]\n', "`categories` must be a non-empty list"),
    ('categories = ["gemm", "gemm"]\n[[rule]]\ncategory = "gemm"\npatterns = ["gemm"]\n', "lists a name twice"),
    ('categories = ["gemm"]\n[[rule]]\ncategory = "moe"\npatterns = ["moe"]\n', "rule 1 has category 'moe'"),
    ('categories = ["gemm"]\n[[rule]]\ncategory = "gemm"\npatterns = []\n', "rule 1 (gemm) needs a non-empty"),
    ('categories = ["gemm"]\n[[rule]]\ncategory = "gemm"\npatterns = ["gemm("]\n', "rule 1 (gemm) has a bad pattern"),
    ('categories = ["gemm"]\n', "no [[rule]] tables"),
])
def test_a_malformed_rules_file_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_rules(text, "bad.toml")

