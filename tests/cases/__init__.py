"""One regression-test module per case of /work/shared/cases/PUBLIC.md."""
