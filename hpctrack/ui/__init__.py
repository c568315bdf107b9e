"""The read-only web dashboard (`hpctrack ui`)."""
