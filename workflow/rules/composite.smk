# Per cluster: Lupton and weighted-mean colour composites on the reference frame's grid.


rule composite:
    input:
        frames=cluster_frames,
        # painted over in the picture
        cosmic_rays=cluster_cosmic_ray_masks,
        # solved from the catalogues; a single filter's is the identity
        registration=paths.REGISTRATION,
    output:
        lupton=paths.LUPTON_RGB,
        weighted=paths.WEIGHTED_RGB,
        lupton_preview=report(
            paths.LUPTON_PREVIEW,
            caption="../report/composite_lupton.rst",
            category="Colour composites",
            subcategory="{cluster}",
            labels={"cluster": "{cluster}", "figure": "Lupton RGB"},
        ),
        weighted_preview=report(
            paths.WEIGHTED_PREVIEW,
            caption="../report/composite_weighted.rst",
            category="Colour composites",
            subcategory="{cluster}",
            labels={"cluster": "{cluster}", "figure": "weighted-mean RGB"},
        ),
        provenance=paths.COMPOSITE_PROVENANCE,
    log:
        "logs/composite/{cluster}.log",
    benchmark:
        "benchmarks/composite/{cluster}.tsv"
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        # three float32 channels of the reference frame plus one frame being resampled
        mem_mb=lambda wc, input, attempt: attempt * int(1000 + 2 * input.size_mb),
        runtime=lambda wc, input, attempt: attempt * int(5 + input.size_mb / 100),
    params:
        frames=composite_frames,
        weights=lambda wc: RGB_WEIGHTS[wc.cluster],
        parameters=RGB_PARAMETERS,
    script:
        "../scripts/composite.py"
