"""Reading recordings (local files and object-store URLs) and decoding them: probing, frames, audio, coverage."""
