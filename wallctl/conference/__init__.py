"""Video conferencing between the three levels of centres: the directory of centres,
the conference links (codecs), calls from dialling to the far end on the wall, content
sharing; API methods, CLI commands, events of category ``conference``."""
