# Per-frame photometry: one job per cluster and filter.


rule photometry:
    input:
        image=frame_image,
    output:
        catalog=paths.CATALOG,
    log:
        "logs/photometry/{cluster}/{filter}.log",
    benchmark:
        "benchmarks/photometry/{cluster}/{filter}.tsv"
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        # measured peak: about 2x the frame's float32 size plus ~110 MB of libraries
        # (bench/photometry_vs_tutorial.py); 4x the file leaves room for 16-bit files
        mem_mb=lambda wc, input, attempt: attempt * int(500 + 4 * input.size_mb),
        runtime=lambda wc, input, attempt: attempt * int(5 + input.size_mb / 20),
    params:
        settings=frame_settings,
        url=frame_url,
        # the frame's content: a replaced frame reruns even when its date is older
        fingerprint=frame_fingerprint,
        photometry=lambda wc: PHOTOMETRY[wc.cluster],
        system=config["magnitude_system"],
        zeropoint_cache=config["zeropoints"]["cache"],
        zeropoint_service=config["zeropoints"]["service_url"],
    script:
        "../scripts/photometry.py"
