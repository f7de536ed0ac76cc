def lab_manifests():
    return {}
