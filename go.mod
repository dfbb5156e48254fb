module github.com/slm-copilot/slm-copilot

go 1.26.8

require (
	github.com/sashabaranov/go-openai v1.43.0
	github.com/stretchr/testify v1.12.1
	go.yaml.in/yaml/v3 v3.0.5
)

require github.com/gruntwork-io/terratest v0.54.0 // indirect
