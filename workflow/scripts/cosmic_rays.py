"""Snakemake adapter: find one frame's cosmic rays (or decide it has none to find) and write
its mask file."""

import logging

from clusterphot.catalog import cosmic_rays_of_frame
from clusterphot.config import FrameSettings
from clusterphot.cosmicrays import write_cosmic_ray_mask
from clusterphot.frames import read_configured_frame
from clusterphot.logs import clean_failure, log_to

log_to(snakemake.log[0])
log = logging.getLogger("cosmic_rays")
with clean_failure():
    settings = FrameSettings(**snakemake.params.settings)
    frame = read_configured_frame(snakemake.input.image, settings)
    mask, decision = cosmic_rays_of_frame(frame, settings)  # a fetched frame: by its URL's name too
    write_cosmic_ray_mask(snakemake.output[0], mask, decision, snakemake.input.image, frame.shape)
    if mask is None:
        log.info("%s (%s): no cosmic rays looked for: %s", frame.path, settings.filter_name, decision.reason)
    else:
        log.info("%s (%s): %d cosmic-ray pixels (%.3f%% of the frame) found with L.A.Cosmic: %s",
                 frame.path, settings.filter_name, mask.sum(), 100 * mask.mean(), decision.reason)
