"""Snakemake adapter: stars matched one-to-one between two filters, with their colour."""

from clusterphot.catalog import write_table
from clusterphot.logs import clean_failure, log_to
from clusterphot.multiband import matched_pair, read_catalogs, read_registration

log_to(snakemake.log[0])
with clean_failure():
    catalogs = read_catalogs(snakemake.input, exclude=("registration",))
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
