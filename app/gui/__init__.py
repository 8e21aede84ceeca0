"""The Qt desktop window. The only part of Fireside that imports Qt (with the rest of app/)."""
