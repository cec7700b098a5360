"""Snakemake adapter: the Lupton and weighted-mean colour composites of one cluster."""

from clusterphot.catalog import write_yaml
from clusterphot.composite import CompositeOutputs, CompositeParameters, FrameInput, make_composites
from clusterphot.logs import clean_failure, log_to
from clusterphot.multiband import read_registration
from clusterphot.registration import Transform

log_to(snakemake.log[0])
with clean_failure():
    frames = [FrameInput(f, snakemake.input[f], **how) for f, how in snakemake.params.frames.items()]
    if "registration" in snakemake.input.keys():
        reference, transforms = read_registration(snakemake.input.registration)
    else:  # a single filter is its own reference
        reference, transforms = frames[0].filter_name, {frames[0].filter_name: Transform.identity()}
    out = snakemake.output
    provenance = make_composites(
        frames,
        transforms,
        reference,
        snakemake.params.weights,
        CompositeParameters(**snakemake.params.parameters),
        CompositeOutputs(out.lupton, out.weighted, out.lupton_preview, out.weighted_preview),
    )
    write_yaml(provenance, out.provenance)
