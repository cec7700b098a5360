"""Snakemake adapter: measure one frame and write its calibrated catalogue."""

from clusterphot.catalog import catalog_for_frame
from clusterphot.config import FrameSettings
from clusterphot.logs import clean_failure, log_to
from clusterphot.outputs import write_table
from clusterphot.photometry import PhotometryParameters

log_to(snakemake.log[0])
with clean_failure():
    table = catalog_for_frame(
        snakemake.input.image,
        FrameSettings(**snakemake.params.settings),
        PhotometryParameters.from_meta(snakemake.params.photometry),
        system=snakemake.params.system,
        zeropoint_cache=snakemake.params.zeropoint_cache,
        zeropoint_service=snakemake.params.zeropoint_service,
    )
    table.meta["cluster"] = snakemake.wildcards.cluster
    if snakemake.params.url:
        table.meta["image_url"] = snakemake.params.url
    write_table(table, snakemake.output.catalog)
