package main

// version is netfence's release version. The image is tagged with it and
// deploy/daemonset.yaml references that tag; a release build may set it
// with -ldflags "-X main.version=...".
var version = "v0.1.0"
