"""genlab-engine, the command line: main.py builds the parser and runs a command."""
