module github.com/slm-copilot/slm-copilot

go 1.26.8

require (
	github.com/gruntwork-io/terratest v0.54.0
	github.com/sashabaranov/go-openai v1.43.0
	github.com/stretchr/testify v1.12.1
	go.yaml.in/yaml/v3 v3.0.5
)

require (
	github.com/hashicorp/errwrap v1.0.0 // indirect
	github.com/hashicorp/go-multierror v1.1.1 // indirect
	github.com/hashicorp/go-version v1.7.0 // indirect
	golang.org/x/net v0.47.0 // indirect
)
