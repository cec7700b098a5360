"""Snakemake adapter: simulate one demo cluster's frames and true star lists."""

from pathlib import Path

from clusterphot.logs import clean_failure, log_to
from clusterphot.simulate import write_simulated_cluster

log_to(snakemake.log[0])
with clean_failure():
    write_simulated_cluster(
        Path(snakemake.output.frames[0]).parent,
        name=snakemake.wildcards.cluster,
        filters=snakemake.params.filters,
        shape=tuple(snakemake.params.shape),
        **snakemake.params.cluster,
    )
