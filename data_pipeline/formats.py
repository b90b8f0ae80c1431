"""Names of the input formats and synthetic profiles, for the command-line parsers.

Kept apart from the readers so building ``fedrec --help`` imports no pandas, polars or pyarrow;
``data_pipeline.readers`` and ``data_pipeline.synth`` check that their registries match these.
"""

PRESET_FORMATS = ("lastfm", "filmtrust", "citeulike", "coat", "amazon-json")
INTERACTION_FORMATS = ("movielens", "csv", "tsv", "parquet", "jsonl", *PRESET_FORMATS)
SYNTH_PROFILES = ("criteo-kaggle", "criteo-terabyte")
