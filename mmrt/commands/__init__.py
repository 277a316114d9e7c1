"""One module a sub-command: ``add_parser(subparsers)`` registers flags, ``run(args)`` does the work."""
