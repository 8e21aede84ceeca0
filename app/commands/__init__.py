"""One module per ``fireside`` sub-command group."""
