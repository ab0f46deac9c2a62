"""Prometheus parsing and GPU/CPU telemetry from documented output formats and /proc."""

from __future__ import annotations

import os
from pathlib import Path

from arbor.tools.serving import metrics, telemetry

FIXTURES = Path(__file__).parent.parent / "fixtures" / "telemetry"


def test_prometheus_parse_and_key_values() -> None:
    samples = metrics.parse((FIXTURES / "vllm_metrics.txt").read_text())
    assert len(samples) == 6
    running = [s for s in samples if s.name == "vllm:num_requests_running"]
    assert running[0].labels == {"engine": "0", "model_name": "meta-llama/Llama-3.1-8B-Instruct"}
    bucket = [s for s in samples if s.labels.get("le") == "+Inf"][0]
    assert bucket.value == 1520.0
    quoted = [s for s in samples if s.name == "vllm:generation_tokens_total"][0]
    assert quoted.labels["model_name"] == 'm "quoted"'
    key = metrics.key_values(samples)
    assert key["vllm:num_requests_running"] == 21.0
    assert key["vllm:kv_cache_usage_perc"] == 0.42



def test_vllm_kv_cache_gauge_read_under_either_spelling() -> None:
    # Before 0.9.2 only the old name: read under the current one, summed over the two engines.
    old = metrics.key_values(metrics.parse((FIXTURES / "vllm_metrics_0_8.txt").read_text()))
    assert old["vllm:kv_cache_usage_perc"] == 0.375 and "vllm:gpu_cache_usage_perc" not in old
    # 0.9.2-0.10 export both spellings of one value: read once, never added up.
    both = metrics.key_values(metrics.parse((FIXTURES / "vllm_metrics_0_10.txt").read_text()))
    assert both["vllm:kv_cache_usage_perc"] == 0.61 and "vllm:gpu_cache_usage_perc" not in both
    assert both["vllm:num_preemptions_total"] == 3.0 and "vllm:num_preemptions_created" not in both


def test_llamacpp_kv_gauge_only_where_the_build_exports_it() -> None:
    # Captured from the pinned llama-server build: no KV-cache gauge since llama.cpp#13660.
    current = metrics.key_values(metrics.parse((FIXTURES / "llamacpp_metrics.txt").read_text()))
    assert "llamacpp:kv_cache_usage_ratio" not in current
    assert current["llamacpp:tokens_predicted_total"] == 8 and current["llamacpp:n_busy_slots_per_decode"] == 1
    older = metrics.key_values(metrics.parse((FIXTURES / "llamacpp_metrics_old.txt").read_text()))
    assert older["llamacpp:kv_cache_usage_ratio"] == 0.0263672 and older["llamacpp:requests_processing"] == 1
    assert "llamacpp:n_decode_total" not in older, "a build without the counter is read without it"

def test_nvidia_smi_rows() -> None:
    gpus = telemetry.parse_nvidia_smi((FIXTURES / "nvidia_smi.csv").read_text())
    assert [g.index for g in gpus] == [0, 1]
    assert gpus[0].name == "NVIDIA H100 80GB HBM3" and gpus[0].utilization_pct == 87
    assert gpus[0].memory_used_mib == 70123 and gpus[0].power_w == 512.33
    assert gpus[1].power_w is None


def test_amd_smi_both_layouts() -> None:
    gpus = telemetry.parse_amd_smi_metric((FIXTURES / "amd_smi_metric.json").read_text())
    assert gpus[0].utilization_pct == 93 and gpus[0].power_w == 612 and gpus[0].temperature_c == 71
    assert gpus[0].memory_total_mib == 196592
    assert gpus[1].memory_total_mib == 192 * 1024
    wrapped = telemetry.parse_amd_smi_metric((FIXTURES / "amd_smi_metric_wrapped.json").read_text())
    assert wrapped[0].index == 3 and wrapped[0].memory_used_mib == 1024


def test_rocm_smi_cards() -> None:
    gpus = telemetry.parse_rocm_smi((FIXTURES / "rocm_smi.json").read_text())
    assert [(g.index, g.utilization_pct, g.power_w, g.temperature_c) for g in gpus] == [
        (0, 88, 301.0, 45.0), (1, 0, 90.0, 30.0)]


def test_proc_usage_of_a_real_group() -> None:
    usage = telemetry.process_usage(os.getpgid(0))
    assert os.getpid() in usage.pids
    assert usage.rss_bytes > 1_000_000 and usage.cpu_seconds > 0 and usage.threads >= 1
    host = telemetry.host_usage()
    assert host.mem_total_bytes > host.mem_available_bytes > 0 and host.cpus >= 1
    snap = telemetry.snapshot(os.getpgid(0))
    assert snap.process is not None and snap.host.cpus == host.cpus
