"""Snakemake adapter: a frame's artificial-star jobs gathered into its table of artificial
stars and its completeness curve (m50 and m90 in the metadata)."""

import logging

from astropy.table import Table

from clusterphot.artificial import ArtificialStarSettings, gather_artificial_stars
from clusterphot.logs import clean_failure, log_to
from clusterphot.outputs import write_table

log_to(snakemake.log[0])
with clean_failure():
    parts = [Table.read(path, format="ascii.ecsv") for path in snakemake.input.jobs]
    catalog = Table.read(snakemake.input.catalog, format="ascii.ecsv")
    ast = ArtificialStarSettings.from_meta(snakemake.params.artificial)
    stars, curve = gather_artificial_stars(parts, catalog, ast)
    write_table(stars, snakemake.output.stars)
    write_table(curve, snakemake.output.curve)
    log = logging.getLogger("clusterphot")
    log.info("%d artificial stars from %d jobs, %d recovered; centre (%.1f, %.1f) px", len(stars), len(parts),
             stars.meta["n_recovered"], *stars.meta["centre_px"])
    for limit in curve.meta["limits"]:
        log.info("zone %d (%.0f-%.0f px, %d stars): m50 %.3f, m90 %.3f", limit["zone"], limit["r_in_px"],
                 limit["r_out_px"], limit["n"], limit["m50"], limit["m90"])
