"""The core's own plugins (the dense head, the basic policies, the npz, synthetic and image_folder data
sources), registered through the same entry-point group as any plugin."""
