"""Snakemake adapter: simulate one demo cluster's frames and true star lists."""

from clusterphot.logs import clean_failure, log_to
from clusterphot.simulate import write_simulated_cluster

log_to(snakemake.log[0])
with clean_failure():
    cluster = snakemake.params.cluster
    write_simulated_cluster(
        snakemake.params.outdir,
        name=snakemake.wildcards.cluster,
        filters=snakemake.params.filters,
        shape=tuple(snakemake.params.shape),
        **cluster,
    )
