"""Snakemake adapter: one job's share of a frame's artificial stars, measured in passes as the
frame's catalogue was measured."""

from astropy.table import Table

from clusterphot.artificial import ArtificialStarSettings, run_artificial_stars, scatter_item
from clusterphot.catalog import psf_parameters
from clusterphot.config import FrameSettings
from clusterphot.logs import clean_failure, log_to
from clusterphot.outputs import write_table
from clusterphot.photometry import PhotometryParameters

log_to(snakemake.log[0])
with clean_failure():
    job, n_jobs = scatter_item(snakemake.wildcards.scatteritem)
    table = run_artificial_stars(
        snakemake.input.image,
        FrameSettings(**snakemake.params.settings),
        Table.read(snakemake.input.catalog, format="ascii.ecsv"),
        snakemake.input.get("psf"),
        PhotometryParameters.from_meta(snakemake.params.photometry),
        psf_parameters(snakemake.params.psf),
        ArtificialStarSettings.from_meta(snakemake.params.artificial),
        snakemake.wildcards.cluster,
        job,
        n_jobs,
        cosmic_ray_mask=snakemake.input.cosmic_rays,
    )
    write_table(table, snakemake.output[0])
