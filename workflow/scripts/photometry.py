"""Snakemake adapter: measure one frame and write its calibrated catalogue (and, measured with
PSF fitting, its PSF file)."""

from clusterphot.catalog import catalog_for_frame, psf_parameters
from clusterphot.config import FrameSettings
from clusterphot.logs import clean_failure, log_to
from clusterphot.outputs import write_table
from clusterphot.photometry import PhotometryParameters

log_to(snakemake.log[0])
with clean_failure():
    psf = snakemake.params.get("psf")  # only rule psf_photometry has it
    table = catalog_for_frame(
        snakemake.input.image,
        FrameSettings(**snakemake.params.settings),
        PhotometryParameters.from_meta(snakemake.params.photometry),
        system=snakemake.params.system,
        zeropoint_cache=snakemake.params.zeropoint_cache,
        zeropoint_service=snakemake.params.zeropoint_service,
        method="aperture" if psf is None else "psf",
        psf_params=None if psf is None else psf_parameters(psf),
        fallback="error" if psf is None else psf["fallback"],
        psf_output=snakemake.output.get("psf"),
        cosmic_ray_mask=snakemake.input.cosmic_rays,
    )
    table.meta["cluster"] = snakemake.wildcards.cluster
    if snakemake.params.url:
        table.meta["image_url"] = snakemake.params.url
    write_table(table, snakemake.output.catalog)
