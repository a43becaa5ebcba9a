"""The `bmcrypt` command line: `app` holds the commands, `output` all terminal output, `main` the
single place where errors become messages and exit codes."""
