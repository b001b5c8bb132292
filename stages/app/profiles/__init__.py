"""Named run configs shipped with the package: `vlcurate run --profile NAME`."""
