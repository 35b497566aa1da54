"""Metal Shading Language: the C-style renderer's Metal dialect and the backend that renders it."""
