"""The run-directory format in one place: file names, atomic writes, run states and the readers that turn run
directories into rows and curves. Imports the standard library, numpy and ``core.methods`` only."""
