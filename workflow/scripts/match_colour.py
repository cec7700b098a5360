"""Snakemake adapter: stars matched one-to-one between two filters, with their colour."""

from clusterphot.crossmatch import matched_pair, read_catalogs, read_registration
from clusterphot.logs import clean_failure, log_to
from clusterphot.outputs import write_table

log_to(snakemake.log[0])
with clean_failure():
    catalogs = read_catalogs(snakemake.params.filters, snakemake.input.catalogs)
    reference, transforms = read_registration(snakemake.input.registration)
    table = matched_pair(
        catalogs,
        transforms,
        snakemake.wildcards.blue,
        snakemake.wildcards.red,
        radius=snakemake.params.radius,
        reference=reference,
    )
    table.meta["cluster"] = snakemake.wildcards.cluster
    write_table(table, snakemake.output[0])
