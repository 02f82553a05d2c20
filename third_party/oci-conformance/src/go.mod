module github.com/opencontainers/distribution-spec/conformance

go 1.24.0

require (
	github.com/goccy/go-yaml v1.9.5
	github.com/opencontainers/distribution-spec/specs-go v0.0.0-20240926185104-8376368dd8aa
	github.com/opencontainers/go-digest v1.0.0
	github.com/opencontainers/image-spec v1.1.0
)

require (
	github.com/fatih/color v1.7.0 // indirect
	github.com/mattn/go-colorable v0.1.13 // indirect
	github.com/mattn/go-isatty v0.0.17 // indirect
	golang.org/x/sys v0.3.0 // indirect
	golang.org/x/xerrors v0.0.0-20200804184101-5ec99f83aff1 // indirect
)
