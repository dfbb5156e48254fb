# Stand-in for marketplace-community lib/community/clitester (master fa6fbbd), which drives a
# real OpenNebula front-end. Our app_handler.rb stand-in (next to this directory) deploys with
# it: the "VM" is this machine, where a sandboxed reference appliance runs.
# Names, arguments and return values follow the upstream files cited on each definition.
require 'yaml'
require 'rspec'
require 'pp'
require 'open3'
require 'timeout'

# The front-end commands the library issues (oneimage create, onetemplate instantiate, onevm
# terminate) are appended to this file, for the project's test to check.
STANDIN_LOG = ENV.fetch('SLM_STANDIN_LOG')

def standin_record(cmd)
    File.open(STANDIN_LOG, 'a') {|f| f.puts(cmd) }
end

RSpec.configure do |c| # init.rb:69-79 (defaults.yaml: only :debug is read here)
    c.add_setting :defaults
    c.defaults = { :debug => false }
end

module CLITester

    DEFAULT_TIMEOUT = 180 # CLITester.rb:20
    DEFAULT_EXEC_TIMEOUT = 200 # CLITester.rb:21

    # SafeExec.rb: runs cmd through a shell (Open3.popen3 of a String), one try, with a timeout
    # (nil: none); exitstatus -1 on timeout.
    class SafeExec

        include RSpec::Matchers

        attr_reader :status, :stdout, :stderr

        def self.run(cmd, timeout = DEFAULT_EXEC_TIMEOUT, try = 1, quiet = false)
            e = new(cmd, timeout, quiet)
            while !e.success? && try > 0
                e.run!
                try -= 1
                !e.success? && try > 0 && sleep(1)
            end
            e
        end

        def initialize(cmd, timeout = DEFAULT_EXEC_TIMEOUT, quiet = false)
            @cmd = cmd
            @timeout = timeout
            @quiet = quiet
            @status = nil
            @stdout = nil
            @stderr = nil
        end

        def run!
            out = err = nil
            Timeout.timeout(@timeout) do
                stdin, stdout, stderr, wait_thr = Open3.popen3(@cmd)
                out = Thread.new { stdout.read }
                err = Thread.new { stderr.read }
                status = wait_thr.value
                stdin.close
                @status = status.exitstatus
                @stdout = out.value
                @stderr = err.value
            end
        rescue Timeout::Error
            @status = -1
            @stderr = "Timeout Reached for: '#{@cmd}'"
            STDERR.puts @stderr unless @quiet
        else
            STDERR.puts @stderr if fail? && !@stderr.empty? && !@quiet
        end

        def success?
            @status == 0
        end

        def fail?
            !success?
        end

        def exitstatus
            @status
        end

        def expect_success
            expect(success?).to be(true), "Expected success for: #{@cmd}\n#{@stderr}"
        end

        def expect_fail
            expect(fail?).to be(true), "Expected fail for: #{@cmd}\n#{@stderr}"
        end

    end

    # CLITester.rb:246-331 without the front-end debug dump: poll until the block's value is
    # (or matches) :success, fail at once when it matches :break, fail at :timeout.
    def wait_loop(options = {}, &block)
        args = { :timeout => DEFAULT_TIMEOUT, :success => true }.merge!(options)
        v = nil
        t_start = Time.now
        while Time.now - t_start < args[:timeout]
            v = block.call
            if args[:break].instance_of?(Regexp)
                expect(v).to_not match(args[:break]),
                                 "expected #{v} not to match /#{args[:break].source}/ " \
                                 "#{args[:resource_type]}(#{args[:resource_ref]})"
            elsif args[:break]
                expect(v).to_not eq(args[:break])
            end
            ok = args[:success].instance_of?(Regexp) ? args[:success].match(v) : v == args[:success]
            return v if ok

            sleep 1
        end
        expect(false).to be(true),
                         "reached timeout, last state was #{v} #{args[:resource_type]}" \
                         "(#{args[:resource_ref]}) while expected #{args[:success]}"
    end

    # VM.rb: the VM the library instantiated. This one is the local machine.
    class VM

        include RSpec::Matchers

        attr_accessor :id, :ip

        def initialize(id)
            @id = id
            @ip = 'localhost'
        end

        # VM.rb:33-60: onetemplate instantiate, wait for RUNNING, then for SSH when ssh is true.
        def self.instantiate(template, ssh = false, options = '')
            standin_record("onetemplate instantiate #{template} #{options}")
            vm = new(0)
            vm.running?
            vm.reachable? if ssh
            vm
        end

        def running?(_options = {})
            'RUNNING'
        end

        # VM.rb:123-134
        def reachable?(user = 'root', timeout = DEFAULT_TIMEOUT, ssh_timeout = 11)
            wait_loop(:timeout => timeout, :resource_ref => @id, :resource_type => self.class) do
                ssh('echo', true, { :timeout => ssh_timeout, :quiet => true }, user).success?
            end
        end

        def info
            self
        end

        # VM.rb:328-338 runs `ssh OPTS user@ip "cmd"` through the front-end's shell, which
        # expands the double-quoted cmd before the VM's shell runs it; timeout from options
        # (none when absent), one try. Here the VM's shell is a local bash.
        def ssh(cmd, _stderr = false, options = {}, _user = 'root', _xpath_ip = '')
            SafeExec.run("bash -c \"#{cmd}\"", options[:timeout], 1, options[:quiet])
        end

        def terminate_hard
            standin_record("onevm terminate --hard #{@id}")
        end

    end

end

include CLITester # rubocop:disable Style/MixinUsage (init.rb:56)
