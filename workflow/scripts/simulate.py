"""Snakemake adapter: simulate one demo cluster's frames and true star lists."""

from clusterphot.logs import clean_failure, log_to
from clusterphot.simulate import simulate_cluster, write_simulated_frame

log_to(snakemake.log[0])
with clean_failure():
    filters = snakemake.params.filters
    simulated = simulate_cluster(
        snakemake.wildcards.cluster,
        filters=filters,
        shape=tuple(snakemake.params.shape),
        **snakemake.params.cluster,
    )
    outputs = zip(filters, snakemake.output.frames, snakemake.output.truths, strict=True)
    for filter_name, frame_path, truth_path in outputs:
        write_simulated_frame(*simulated[filter_name], frame_path, truth_path)
