# Our stand-in for OpenNebula/marketplace-community lib/community/app_handler.rb, read at
# master fa6fbbd; not a copy of it. A spec requires it as it requires the marketplace's: it
# reads ../metadata.yaml next to the spec with the same calls, in the same order, so metadata
# the real library crashes on raises the same exception here, on the line citing that read.
# It then deploys through the clitester stand-in next to it.
# "app_handler.rb:N" below is line N of upstream's file at fa6fbbd.
require 'rspec'
require 'yaml'

# app_handler.rb:4-7: CLI helpers from clitester/ under the working directory, which
# app_readiness.rb makes lib/community.
$LOAD_PATH << File.join(Dir.pwd, 'clitester')
require 'init'
require 'image'

# The requiring spec's directory; Psych 4's load_file allows Symbols and refuses aliases.
spec_dir = File.dirname(caller_locations(1, 1).first.absolute_path)
metadata = YAML.load_file(File.join(spec_dir, '..', 'metadata.yaml')) # app_handler.rb:9

# Reads made while the spec loads: a failure here fails the whole spec file.
template = metadata[:one][:template][:NAME] || 'base' # app_handler.rb:11
datastore = metadata[:one][:datastore] || 'default' # app_handler.rb:12
images_url = ENV.fetch('IMAGES_URL', nil) # app_handler.rb:14
image_format = metadata[:infra][:disk_format] || 'qcow2' # app_handler.rb:15
image = metadata[:app][:name] # app_handler.rb:17
APP_CONTEXT_PARAMS = metadata[:app][:context][:params] # app_handler.rb:18, read by specs
ENV['ONE_XMLRPC_TIMEOUT'] = metadata[:one][:timeout] || '90' # app_handler.rb:20

# Helpers for the hooks, kept out of the specs' namespace.
module StandinAppHandler

    module_function

    # app_handler.rb:58-67: the --context value, two fixed entries then each param, its key
    # prefixed with ONEAPP_ only when prefixed is the boolean true, values in \"...\".
    def context_arg(params, prefixed)
        prefix = prefixed == true ? 'ONEAPP_' : ''
        entries = [['SSH_PUBLIC_KEY', '\$USER[SSH_PUBLIC_KEY]'], %w[NETWORK YES]]
        params.each {|key, value| entries << ["#{prefix}#{key}", value] }
        entries.map {|key, value| "#{key}=\\\"#{value}\\\"" }.join(',')
    end

    # app_handler.rb:75-95: context.yaml for the context-<hypervisor> microenv, from these
    # reads in this order, under appliances/<last _-separated part of the name>/.
    def write_context_yaml(metadata)
        name = metadata[:app][:name]
        format = metadata[:infra][:disk_format] # app_handler.rb:82, no 'qcow2' default
        os_type = metadata[:app][:os][:type] # app_handler.rb:83
        microenv = "context-#{metadata[:app][:hypervisor].downcase}" # app_handler.rb:84
        text = ['---', ':tests:', "  '#{name}':",
                "    :image_name: #{name}.#{format}",
                "    :type: #{os_type}",
                "    :microenvs: ['#{microenv}']",
                '    :slow: true',
                '    :enable_netcfg_common: True',
                '    :enable_netcfg_ip_methods: True',
                '', ''].join("\n")
        short_name = name.split('_').last # app_handler.rb:91
        dir = File.join(Dir.pwd, '..', '..', 'appliances', short_name)
        File.write(File.join(dir, 'context.yaml'), text) # app_handler.rb:94
    end

end

RSpec.shared_context 'vm_handler' do # app_handler.rb:22-48
    before(:all) do
        @info = {} # specs reach the VM as @info[:vm]
        unless CLIImage.list('-l NAME').include?(image) # app_handler.rb:26-33
            source = "#{images_url}#{image}.#{image_format}"
            puts "Creating image #{image} from #{source}"
            CLIImage.create(image, datastore, "--path #{source}")
        end
        prefixed = metadata[:app][:context][:prefixed] # app_handler.rb:35
        context = StandinAppHandler.context_arg(APP_CONTEXT_PARAMS, prefixed)
        options = "--context \"#{context}\" --disk #{image}" # app_handler.rb:37
        @info[:vm] = VM.instantiate(template, true, options) # app_handler.rb:40
        @info[:vm].info
    end

    after(:all) do
        # app_handler.rb:45-46, no ensure: when context.yaml fails the VM is not terminated.
        StandinAppHandler.write_context_yaml(metadata)
        @info[:vm].terminate_hard
    end
end
