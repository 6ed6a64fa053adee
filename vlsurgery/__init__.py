"""vlsurgery: a declarative model-surgery language and compiler for parameter-efficient tuning."""
