"""Analysis of one decoded recording: find faces, find voices, link them."""
