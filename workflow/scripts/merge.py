"""Snakemake adapter: the cluster's multi-band catalogue on the reference frame's grid."""

from clusterphot.crossmatch import merged_catalog, read_catalogs, read_registration
from clusterphot.logs import clean_failure, log_to
from clusterphot.outputs import write_table

log_to(snakemake.log[0])
with clean_failure():
    catalogs = read_catalogs(snakemake.params.filters, snakemake.input.catalogs)
    reference, transforms = read_registration(snakemake.input.registration)
    table = merged_catalog(
        catalogs,
        transforms,
        radius=snakemake.params.radius,
        min_filters=snakemake.params.min_filters,
        reference=reference,
    )
    table.meta["cluster"] = snakemake.wildcards.cluster
    write_table(table, snakemake.output[0])
