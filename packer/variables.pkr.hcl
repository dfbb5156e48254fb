variable "appliance_name" {
  type        = string
  description = "Name of the appliance: the output image is <appliance_name>.qcow2."
  default     = "slm-copilot"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]*$", var.appliance_name))
    error_message = "The appliance_name must be lower-case letters, digits and dashes."
  }
}

variable "version" {
  type        = string
  description = "Appliance version, recorded in the image."
  default     = "1.0.0"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+", var.version))
    error_message = "The version must start with MAJOR.MINOR.PATCH."
  }
}

variable "base_image" {
  type        = string
  description = "Path of the base cloud image (Ubuntu 24.04 qcow2), downloaded and verified by the build suite."

  validation {
    condition     = length(var.base_image) > 0
    error_message = "The base_image must name the base qcow2 file."
  }
}

variable "seed_iso" {
  type        = string
  description = "Path where the first build writes the cloud-init seed ISO the second build boots with."
  default     = "slm-copilot-cloud-init.iso"

  validation {
    condition     = can(regex("\\.iso$", var.seed_iso))
    error_message = "The seed_iso must end in .iso."
  }
}

variable "output_dir" {
  type        = string
  description = "Directory Packer writes the raw output image to; it must not exist yet."
  default     = "output"

  validation {
    condition     = length(var.output_dir) > 0
    error_message = "The output_dir must not be empty."
  }
}

variable "build_password" {
  type        = string
  description = "Root password of the build VM only: set by cloud-init for Packer's SSH, locked again before the image is saved."
  sensitive   = true

  validation {
    condition     = length(var.build_password) >= 16
    error_message = "The build_password must be at least 16 characters."
  }
}

variable "accelerator" {
  type        = string
  description = "QEMU accelerator: kvm on build hosts, tcg (software emulation) where /dev/kvm is unusable."
  default     = "kvm"

  validation {
    condition     = contains(["kvm", "tcg"], var.accelerator)
    error_message = "The accelerator must be kvm or tcg."
  }
}

variable "qemu_binary" {
  type        = string
  description = "The QEMU system emulator: a name on the PATH or a path (qemu-kvm on some distributions)."
  default     = "qemu-system-x86_64"

  validation {
    condition     = length(var.qemu_binary) > 0
    error_message = "The qemu_binary must name the QEMU system emulator."
  }
}

variable "cpus" {
  type        = number
  description = "vCPUs of the build VM (the pre-warm runs inference)."
  default     = 4

  validation {
    condition     = var.cpus >= 1 && var.cpus <= 64
    error_message = "The cpus must be between 1 and 64."
  }
}

variable "memory" {
  type        = number
  description = "Memory of the build VM in MiB. With bake_model, the pre-warm needs the weights (14.3 GB) plus ~160 KiB per token of prewarm_context plus 2 GiB for the system: the build suite's preflight checks that rule."
  default     = 18432

  validation {
    condition     = var.memory >= 1024
    error_message = "The memory must be at least 1024 MiB."
  }
}

variable "disk_size" {
  type        = string
  description = "Virtual disk size of the image (model, OS and room to grow)."
  default     = "50G"

  validation {
    condition     = can(regex("^[0-9]+[MG]$", var.disk_size))
    error_message = "The disk_size must look like 50G or 4096M."
  }
}

variable "ssh_timeout" {
  type        = string
  description = "How long Packer waits for SSH on the build VM."
  default     = "30m"

  validation {
    condition     = can(regex("^[0-9]+[smh]$", var.ssh_timeout))
    error_message = "The ssh_timeout must look like 30m."
  }
}

variable "headless" {
  type        = bool
  description = "Run QEMU without a display."
  default     = true
}

variable "appliance_dir" {
  type        = string
  description = "Directory of the appliance's files (appliances/slm-copilot)."
  default     = "../appliances/slm-copilot"

  validation {
    condition     = length(var.appliance_dir) > 0
    error_message = "The appliance_dir must not be empty."
  }
}

variable "one_apps_dir" {
  type        = string
  description = "Checkout of OpenNebula/one-apps at the pinned ref (framework files and context hooks)."
  default     = "../one-apps"

  validation {
    condition     = length(var.one_apps_dir) > 0
    error_message = "The one_apps_dir must not be empty."
  }
}

variable "context_package" {
  type        = string
  description = "Path of the one-context .deb package installed into the image."
  default     = "one-context.deb"

  validation {
    condition     = can(regex("\\.deb$", var.context_package))
    error_message = "The context_package must be a .deb file."
  }
}

variable "install_context" {
  type        = bool
  description = "Install the one-context package (off only for the smoke build, which has no package)."
  default     = true
}

variable "install_one_apps" {
  type        = bool
  description = "Install the one-apps framework and run service_install (off only for the smoke build: it needs the internet)."
  default     = true
}

variable "bake_model" {
  type        = bool
  description = "Bake the model's weights into the image (offline image, ~15 GB). false: a small image whose appliance downloads the pinned model at first boot."
  default     = true
}

variable "prewarm_context" {
  type        = number
  description = "Context size (tokens) of the build-time pre-warm: small, so weights plus KV cache fit the build VM."
  default     = 4096

  validation {
    condition     = var.prewarm_context >= 512 && var.prewarm_context <= 32768
    error_message = "The prewarm_context must be between 512 and 32768 tokens."
  }
}

variable "model_url" {
  type        = string
  description = "Model download URL, pinned to a Hugging Face commit (resolve/<commit>/...); empty: the appliance's pinned default."
  default     = ""

  validation {
    condition     = var.model_url == "" || can(regex("^https://[^/]+/.+/resolve/[0-9a-f]{40}/[^/]+\\.gguf$", var.model_url))
    error_message = "The model_url must be an https URL pinned to a commit: https://HOST/OWNER/REPO/resolve/<40-hex commit>/FILE.gguf."
  }
}

variable "model_commit" {
  type        = string
  description = "Hugging Face commit of the default model URL (appliance.sh's MODEL_COMMIT); empty: the one model_url names."
  default     = ""

  validation {
    condition     = can(regex("^([0-9a-f]{40})?$", var.model_commit))
    error_message = "The model_commit must be a 40-hex commit id, or empty."
  }
}

variable "model_sha256" {
  type        = string
  description = "sha256 of the model file; empty: the appliance's pinned default (a release build refuses to run without one)."
  default     = ""

  validation {
    condition     = can(regex("^([0-9a-f]{64})?$", var.model_sha256))
    error_message = "The model_sha256 must be 64 lower-case hex digits, or empty."
  }
}

variable "model_size" {
  type        = string
  description = "Size of the model file in bytes; empty: the appliance's pinned default."
  default     = ""

  validation {
    condition     = can(regex("^([1-9][0-9]*)?$", var.model_size))
    error_message = "The model_size must be a number of bytes, or empty."
  }
}

variable "certify_binary" {
  type        = string
  description = "The compiled acceptance suite (go test -c ./acceptance), installed as /usr/local/lib/slm-copilot/slm-copilot-certify.test."

  validation {
    condition     = length(var.certify_binary) > 0
    error_message = "The certify_binary must name the compiled acceptance suite."
  }
}
