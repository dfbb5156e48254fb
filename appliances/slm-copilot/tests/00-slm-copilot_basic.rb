# frozen_string_literal: true

# SLM-Copilot certification for OpenNebula/marketplace-community: the library
# (lib/community/app_handler.rb) deploys the VM; the VM then certifies itself with the
# project's acceptance suite, which the image carries (slm-copilot-certify).
require_relative '../../../lib/community/app_handler'

# Paths are expanded on the VM: VM#ssh wraps the command in double quotes on the front-end
# (clitester/VM.rb), so the escaped \$ reaches the VM's shell. SLM_ROOT is unset on a VM; the
# project's own test sets it to the root of a sandboxed reference appliance.
SLM_VM_ROOT = '\${SLM_ROOT:-}'

# The small image downloads the model (14.3 GB) at first boot, then loads it: bootstrap
# ends long after the library's 180 s wait for RUNNING.
SLM_BOOTSTRAP_TIMEOUT = 3600
# slm-copilot-certify's own -test.timeout is 60m.
SLM_CERTIFY_TIMEOUT = 3900

describe 'Appliance Certification' do
    include_context('vm_handler')

    it 'finishes bootstrap (one-apps status)' do
        status = wait_loop(:success => /bootstrap_success/, :break => /_failure/,
                           :timeout => SLM_BOOTSTRAP_TIMEOUT,
                           :resource_ref => @info[:vm].id, :resource_type => 'one-apps status of VM') do
            @info[:vm].ssh("cat #{SLM_VM_ROOT}/etc/one-appliance/status").stdout.to_s.strip
        end
        pp status
    end

    it 'writes the report with the endpoint and the credentials' do
        # grep -q: the report holds the password, which must not reach the test output.
        ['endpoint *= https://', 'username *= .', 'password *= .'].each do |line|
            @info[:vm].ssh("grep -Eq '^#{line}' #{SLM_VM_ROOT}/etc/one-appliance/config").expect_success
        end
    end

    it 'marks the engine ready after a real completion' do
        @info[:vm].ssh("test -f #{SLM_VM_ROOT}/run/slm-copilot/ready").expect_success
    end

    it 'passes the acceptance suite (slm-copilot-certify)' do
        run = @info[:vm].ssh('slm-copilot-certify', false, { :timeout => SLM_CERTIFY_TIMEOUT })
        puts run.stdout # the suite's -test.v report; it never prints the password
        expect(run.exitstatus).to eq(0), "slm-copilot-certify exited #{run.exitstatus}:\n#{run.stderr}"
    end

    it 'has no failed systemd unit' do
        booted = @info[:vm].ssh("test -d #{SLM_VM_ROOT}/run/systemd/system")
        unless booted.success?
            skip('the target was not booted with systemd (no /run/systemd/system): ' \
                 'a sandboxed reference appliance, not a VM')
        end

        failed = @info[:vm].ssh('systemctl --failed --plain --no-legend')
        expect(failed.exitstatus).to eq(0), "systemctl --failed: #{failed.stderr}"
        expect(failed.stdout.strip).to be_empty, "failed units:\n#{failed.stdout}"
    end
end
