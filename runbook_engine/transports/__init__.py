"""Where commands run: the local machine or a host over SSH, behind one contract."""
