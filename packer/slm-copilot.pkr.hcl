packer {
  required_plugins {
    qemu = {
      source = "github.com/hashicorp/qemu"
      # Exactly the version `make deps` builds and preflight checks: cpu_model, disk_discard,
      # disk_detect_zeroes and skip_compaction below are read as v1.0.9 defines them.
      version = "= 1.0.9"
    }
  }
}

locals {
  # Steps that need files from outside this repository (or the internet) are skipped by
  # emptying their lists, so the smoke build runs the same pipeline without them.
  context_steps  = var.install_context ? ["context"] : []
  one_apps_steps = var.install_one_apps ? ["one-apps"] : []
  # packer-plugin-qemu v1.0.9 passes no -cpu unless cpu_model is set (builder/qemu/step_run.go),
  # so the guest would get qemu64 without AVX and LocalAI would pick its slowest llama.cpp build.
  cpu_model = var.accelerator == "kvm" ? "host" : "max"
}

# Build 1: the cloud-init seed ISO that lets Packer log into the base image.
source "null" "seed" {
  communicator = "none"
}

build {
  name    = "seed"
  sources = ["source.null.seed"]

  provisioner "shell-local" {
    environment_vars = ["BUILD_PASSWORD=${var.build_password}", "SEED_ISO=${var.seed_iso}"]
    script           = "${path.root}/scripts/make-seed-iso.sh"
  }
}

# Build 2: boot the base image with the seed, provision it, save it.
source "qemu" "slm_copilot" {
  qemu_binary = var.qemu_binary
  accelerator = var.accelerator
  cpu_model   = local.cpu_model
  cpus        = var.cpus
  memory      = var.memory
  disk_size   = var.disk_size

  iso_url      = var.base_image
  iso_checksum = "none" # verified by the build suite against the published SHA256SUMS
  disk_image   = true

  output_directory = var.output_dir
  vm_name          = "${var.appliance_name}.qcow2"
  format           = "qcow2"
  headless         = var.headless
  net_device       = "virtio-net"
  disk_interface   = "virtio"
  # Blocks the guest frees (fstrim in the cleanup step) and zeroes it writes leave the
  # qcow2 instead of staying allocated in it.
  disk_discard       = "unmap"
  disk_detect_zeroes = "unmap"
  # The build suite's finish stage recompresses the image: Packer's own qemu-img convert
  # would only copy 20+ GB once more.
  skip_compaction = true

  qemuargs = [
    ["-cdrom", var.seed_iso],
    ["-serial", "file:${var.output_dir}-serial.log"],
  ]

  communicator     = "ssh"
  ssh_username     = "root"
  ssh_password     = var.build_password
  ssh_timeout      = var.ssh_timeout
  shutdown_command = "poweroff"
}

build {
  name    = "slm-copilot"
  sources = ["source.qemu.slm_copilot"]

  # Step 1: SSH hardening for the image (the build session stays open).
  provisioner "shell" {
    script = "${path.root}/scripts/81-configure-ssh.sh"
  }

  # Step 2: one-context.
  dynamic "provisioner" {
    for_each = local.context_steps
    labels   = ["file"]
    content {
      source      = var.context_package
      destination = "/tmp/one-context.deb"
    }
  }

  dynamic "provisioner" {
    for_each = local.context_steps
    labels   = ["shell"]
    content {
      script = "${path.root}/scripts/80-install-context.sh"
    }
  }

  # Step 3: the one-appliance tree.
  provisioner "shell" {
    inline_shebang = "/bin/bash -e"
    inline = [
      "install -o 0 -g 0 -m u=rwx,g=rx,o= -d /etc/one-appliance /etc/one-appliance/service.d /etc/one-appliance/lib",
      "install -o 0 -g 0 -m u=rwx,g=rx,o=rx -d /opt/one-appliance /opt/one-appliance/bin",
    ]
  }

  # Step 4: the one-apps framework, from the pinned checkout.
  dynamic "provisioner" {
    for_each = local.one_apps_steps
    labels   = ["file"]
    content {
      sources = [
        "${var.one_apps_dir}/appliances/scripts/net-90-service-appliance",
        "${var.one_apps_dir}/appliances/scripts/net-99-report-ready",
        "${var.one_apps_dir}/appliances/service.sh",
        "${var.one_apps_dir}/appliances/lib/common.sh",
        "${var.one_apps_dir}/appliances/lib/functions.sh",
      ]
      destination = "/etc/one-appliance/lib/"
    }
  }

  # Step 5: the appliance's own files.
  provisioner "file" {
    sources = [
      "${var.appliance_dir}/appliance.sh",
      "${var.appliance_dir}/frontdoor.sh",
      "${var.appliance_dir}/site.conf.tmpl",
      "${var.appliance_dir}/context-guard.js",
      "${var.appliance_dir}/slm-copilot-ready",
      "${var.appliance_dir}/local-ai.service",
      "${var.appliance_dir}/slm-copilot-certify",
    ]
    destination = "/etc/one-appliance/service.d/"
  }

  # Step 6: framework files and context hooks into place.
  dynamic "provisioner" {
    for_each = local.one_apps_steps
    labels   = ["shell"]
    content {
      script = "${path.root}/scripts/82-configure-context.sh"
    }
  }

  # Step 7: service_install (LocalAI, backend, model, pre-warm). The model pins come from
  # the build suite; the pre-warm runs with a small context so it fits the build VM.
  dynamic "provisioner" {
    for_each = local.one_apps_steps
    labels   = ["shell"]
    content {
      environment_vars = [
        "SLM_BAKE_MODEL=${var.bake_model}",
        "SLM_PREWARM_CONTEXT=${var.prewarm_context}",
        "MODEL_URL=${var.model_url}",
        "MODEL_COMMIT=${var.model_commit}",
        "MODEL_SHA256=${var.model_sha256}",
        "MODEL_SIZE=${var.model_size}",
      ]
      inline_shebang = "/bin/bash -e"
      inline         = ["/etc/one-appliance/service install && sync"]
    }
  }

  # Step 8: the compiled acceptance suite, so an instance can certify itself
  # (`sudo slm-copilot-certify`) and the marketplace's spec can run it over SSH.
  provisioner "file" {
    source      = var.certify_binary
    destination = "/tmp/slm-copilot-certify.test"
  }

  provisioner "shell" {
    inline_shebang = "/bin/bash -e"
    inline = [
      "install -D -o 0 -g 0 -m 0755 /tmp/slm-copilot-certify.test /usr/local/lib/slm-copilot/slm-copilot-certify.test",
      "install -o 0 -g 0 -m 0755 /etc/one-appliance/service.d/slm-copilot-certify /usr/local/bin/slm-copilot-certify",
      "rm -f /tmp/slm-copilot-certify.test",
    ]
  }

  # Step 9: clean up for cloud reuse, then trim; the build password stops working here.
  provisioner "shell" {
    environment_vars = ["APPLIANCE_VERSION=${var.version}"]
    script           = "${path.root}/scripts/90-cleanup.sh"
  }
}
