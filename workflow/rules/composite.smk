# Per cluster: Lupton and weighted-mean colour composites on the reference frame's grid.


rule composite:
    input:
        unpack(composite_inputs),
    output:
        lupton="results/rgb/{cluster}_lupton.png",
        weighted="results/rgb/{cluster}_weighted.png",
        lupton_preview=report(
            "results/rgb/{cluster}_lupton_preview.png",
            caption="../report/composite_lupton.rst",
            category="Colour composites",
            subcategory="{cluster}",
            labels={"cluster": "{cluster}", "figure": "Lupton RGB"},
        ),
        weighted_preview=report(
            "results/rgb/{cluster}_weighted_preview.png",
            caption="../report/composite_weighted.rst",
            category="Colour composites",
            subcategory="{cluster}",
            labels={"cluster": "{cluster}", "figure": "weighted-mean RGB"},
        ),
        provenance="results/rgb/{cluster}_composite.yaml",
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
        frames=lambda wc: composite_frames(wc.cluster),
        weights=lambda wc: RGB_WEIGHTS[wc.cluster],
        parameters=asdict(RGB_PARAMETERS),
    script:
        "../scripts/composite.py"
