"""Measurement library: timers, loads, statistics, memory, energy, FLOPs, threads, provenance.

It times callables and knows nothing of recommenders. Modules:
  stats       summarize() -> TimingSummary (percentiles, bootstrap 95% intervals, trust flags), metric_rows()
  timer       perf_counter_ns timing, Sync hooks for CUDA, measure_repeated() with a two-sided stop rule
  loads       offline / single_stream / server / server_slo_search over serve(batch)
  memory      RssSampler, CUDA/NVML memory, object_nbytes()
  energy      EnergyMeter (RAPL / NVML measured, CPU-seconds estimated)
  flops       analytic FLOPs, measured peak GEMM FLOP/s and memory bandwidth, utilisation()
  threads     pin_threads() (call first in a cell process), ort_session_options()
  provenance  collect(): code, packages, machine, fingerprint
  peer        peer_check(): suite timer versus a plain loop
Submodules are imported explicitly (`from bench.measure.loads import server`) so that a cell process pays
only for what it uses.
"""
