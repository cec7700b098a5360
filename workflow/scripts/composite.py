"""Snakemake adapter: the Lupton and weighted-mean colour composites of one cluster."""

from clusterphot.composite import CompositeOutputs, CompositeParameters, FrameInput, make_composites
from clusterphot.crossmatch import read_registration
from clusterphot.logs import clean_failure, log_to
from clusterphot.outputs import write_yaml

log_to(snakemake.log[0])
with clean_failure():
    frames = [
        FrameInput(f, path, **snakemake.params.frames[f], cosmic_ray_mask=mask)
        for f, path, mask in zip(snakemake.params.frames, snakemake.input.frames, snakemake.input.cosmic_rays,
                                 strict=True)
    ]
    reference, transforms = read_registration(snakemake.input.registration)
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
