"""Snakemake adapter: solve each frame's transform onto the cluster's reference frame."""

from clusterphot.crossmatch import read_catalogs, reference_filter, register_catalogs, write_registration
from clusterphot.logs import clean_failure, log_to

log_to(snakemake.log[0])
with clean_failure():
    catalogs = read_catalogs(snakemake.params.filters, snakemake.input.catalogs)
    reference = reference_filter(catalogs)
    transforms = register_catalogs(
        catalogs,
        reference,
        max_shift=snakemake.params.max_shift,
        tolerance=snakemake.params.tolerance,
        model=snakemake.params.model,
    )
    write_registration(transforms, reference, snakemake.output[0])
