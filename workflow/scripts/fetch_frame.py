"""Snakemake adapter: fetch one frame given by URL."""

from clusterphot.errors import ConfigError
from clusterphot.fetch import fetch_frame
from clusterphot.logs import clean_failure, log_to

log_to(snakemake.log[0])
with clean_failure():
    if not snakemake.params.url:
        raise ConfigError(f"{snakemake.output[0]}: this frame is not given by URL in the config")
    fetch_frame(snakemake.params.url, snakemake.output[0])
