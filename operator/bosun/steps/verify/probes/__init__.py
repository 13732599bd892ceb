"""The objective checks of executed mutating calls, one module per toolset; ``registry`` says which
checks follow which tool, ``base`` what a probe is."""
