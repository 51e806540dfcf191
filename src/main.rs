//! `vmdkrecover`: recover files from VMware virtual disks, read-only, without root.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use vmdkrecover::cmd;

const EXAMPLES: &str = "\
Examples:
  vmdkrecover info web01.vmdk
  vmdkrecover ls -l web01.vmdk VolGroup00/LogVol00:/etc
  vmdkrecover cat web01.vmdk /etc/httpd/conf/httpd.conf        (guest path, via the guest's fstab)
  vmdkrecover cp web01.vmdk VolGroup00/LogVol00:/etc ./restore/
  vmdkrecover cp web01.vmdk sda1:/grub/grub.conf ./restore/
  vmdkrecover cp --disk web01_1.vmdk web01.vmdk VolGroup01/data:/srv ./restore/

IMAGE is a .vmdk descriptor (flat/VMFS, sparse, stream-optimized, ESX delta), a .vmx
or a raw image; it is opened read-only and never written, locked or renamed.
SPEC is VOLUME:PATH, where VOLUME is VG/LV, /dev/VG/LV, /dev/mapper/VG-LV, sda1,
/dev/sda1, p1 (first disk), sdb (whole disk), LABEL=x or UUID=x; or just an absolute
path, resolved the way the guest would mount it (root = the volume with /etc/fstab).

Exit status: 0 all done, 1 done with some files or volumes failing (or the filesystem
warned while it was read: something may be missing), 2 bad usage or the image,
volume or path cannot be opened.";

#[derive(Parser)]
#[command(name = "vmdkrecover", version, about = "Recover files from VMware virtual disks (VMDK -> partitions -> LVM2 -> ext2/3/4), read-only, without root", after_help = EXAMPLES)]
struct Cli {
    /// No progress display and no summary line (errors and warnings are still printed).
    #[arg(short = 'q', long = "quiet", global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// Options shared by every command that opens a VM's disks.
#[derive(Args, Clone)]
struct ImageArgs {
    /// The disk: a .vmdk, a .vmx, or a raw image (read-only).
    #[arg(value_name = "IMAGE")]
    image: PathBuf,
    /// Another disk of the same VM (a VG spanning two VMDKs); repeatable.
    #[arg(long = "disk", value_name = "EXTRA")]
    disks: Vec<PathBuf>,
    /// Use this LVM metadata text (an /etc/lvm/backup or archive file) instead of the on-disk copy.
    #[arg(long, value_name = "FILE")]
    lvm_metadata: Option<PathBuf>,
    /// Show the filesystem as it is on disk, without replaying its journal in memory.
    #[arg(long)]
    no_journal: bool,
    /// Let extent and parent file names in a descriptor point outside its folder.
    #[arg(long)]
    allow_outside_dir: bool,
}

impl ImageArgs {
    fn into_opts(self) -> cmd::Common {
        cmd::Common {
            request: vmdkrecover::stack::OpenRequest {
                image: self.image,
                extra_disks: self.disks,
                lvm_metadata: self.lvm_metadata,
                allow_outside_dir: self.allow_outside_dir,
            },
            replay_journal: !self.no_journal,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Show the whole storage stack: disks, partitions, LVM, filesystems.
    #[command(after_help = "Example:\n  vmdkrecover info web01.vmdk --disk web01_1.vmdk")]
    Info {
        #[command(flatten)]
        image: ImageArgs,
        /// Machine-readable output (documented in README.md).
        #[arg(long)]
        json: bool,
    },
    /// List a directory (or show one file).
    #[command(
        after_help = "Examples:\n  vmdkrecover ls -l web01.vmdk VolGroup00/LogVol00:/etc\n  vmdkrecover ls -R web01.vmdk sda1:/"
    )]
    Ls {
        #[command(flatten)]
        image: ImageArgs,
        /// VOLUME:PATH or a guest path.
        spec: String,
        /// Long listing: mode, links, owner, group, size, mtime, symlink target.
        #[arg(short = 'l')]
        long: bool,
        /// Recurse into subdirectories.
        #[arg(short = 'R')]
        recursive: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Write files' contents to standard output, in order (symlinks followed inside the guest).
    #[command(
        after_help = "Examples:\n  vmdkrecover cat web01.vmdk VolGroup00/LogVol00:/etc/fstab\n  vmdkrecover cat web01.vmdk /etc/passwd /etc/group"
    )]
    Cat {
        #[command(flatten)]
        image: ImageArgs,
        /// VOLUME:PATH or guest paths.
        #[arg(required = true, value_name = "SPEC")]
        specs: Vec<String>,
    },
    /// Show an inode's metadata: type, mode, owner, size, times, links, xattrs.
    #[command(
        after_help = "Example:\n  vmdkrecover stat web01.vmdk VolGroup00/LogVol00:/etc/passwd"
    )]
    Stat {
        #[command(flatten)]
        image: ImageArgs,
        /// VOLUME:PATH or a guest path.
        spec: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Search a tree by name, type or modification time.
    #[command(
        after_help = "Examples:\n  vmdkrecover find web01.vmdk VolGroup00/LogVol00:/etc --name '*.conf'\n  vmdkrecover find web01.vmdk VolGroup00/LogVol00:/ --type f --newer-than 2024-03-01"
    )]
    Find {
        #[command(flatten)]
        image: ImageArgs,
        /// VOLUME:PATH or a guest path.
        spec: String,
        /// Only names matching this shell glob.
        #[arg(long, value_name = "GLOB")]
        name: Option<String>,
        /// Only this type: f (file), d (directory), l (symlink).
        #[arg(long = "type", value_name = "f|d|l")]
        kind: Option<String>,
        /// Only entries modified after DATE (YYYY-MM-DD[ HH:MM[:SS]] UTC, or @EPOCH).
        #[arg(long, value_name = "DATE")]
        newer_than: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Copy files and trees out, like `cp -r` (symlinks kept, hard links kept, modes and times kept).
    #[command(
        after_help = "Examples:\n  # ./restore must exist; creates ./restore/etc\n  vmdkrecover cp web01.vmdk VolGroup00/LogVol00:/etc ./restore/\n  # guest paths: creates ./restore/boot and ./restore/fstab\n  vmdkrecover cp web01.vmdk /boot /etc/fstab ./restore/\n  # the root's contents, with owners and xattrs\n  vmdkrecover cp -a web01.vmdk VolGroup00/LogVol00:/ ./rootfs\n  vmdkrecover cp web01.vmdk sda1:/grub/grub.conf /tmp/grub.conf.old\n\nDEST ending in / must be an existing directory, and so must DEST with several SPECs.\nAn existing file is reported and kept (exit status 1) unless -f; -n skips it silently."
    )]
    Cp {
        #[command(flatten)]
        image: ImageArgs,
        /// One or more VOLUME:PATH (or guest paths), then the destination.
        #[arg(required = true, num_args = 2.., value_name = "SPEC... DEST")]
        args: Vec<String>,
        /// Also restore owner and group (where permitted) and extended attributes.
        #[arg(short = 'a', long = "archive")]
        archive: bool,
        /// Replace existing destination files.
        #[arg(short = 'f', long)]
        force: bool,
        /// Skip existing destination files silently (instead of reporting each).
        #[arg(short = 'n', long = "no-clobber", conflicts_with = "force")]
        no_clobber: bool,
        /// Accepted for cp compatibility: the copy is always recursive.
        #[arg(short = 'r', short_alias = 'R', long = "recursive")]
        recursive: bool,
        /// Print 'SRC' -> 'DEST' for every object made.
        #[arg(short = 'v', long)]
        verbose: bool,
        /// Copy with this many threads (default: the number of CPUs).
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Retry a read that fails with EIO or ETIMEDOUT this many times (exponential backoff).
        #[arg(long, value_name = "N", default_value_t = 0)]
        retries: u32,
        /// Copy every readable byte of a damaged file (zeros for unreadable ranges) as NAME.partial.
        #[arg(long)]
        salvage: bool,
        /// With --salvage, give a salvaged file its own name instead of NAME.partial.
        #[arg(long, requires = "salvage")]
        salvage_in_place: bool,
        /// Print a JSON summary (counts, salvaged files and their unreadable ranges) on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Write a tree as a tar archive (to a file, or - for standard output).
    #[command(
        after_help = "Example:\n  vmdkrecover tar web01.vmdk VolGroup00/LogVol00:/etc -o etc.tar"
    )]
    Tar {
        #[command(flatten)]
        image: ImageArgs,
        /// VOLUME:PATH or a guest path.
        spec: String,
        /// Output file, or - for standard output (refused when it is a terminal).
        #[arg(short = 'o', value_name = "FILE|-", default_value = "-")]
        output: String,
        /// Replace an existing output file.
        #[arg(short = 'f', long)]
        force: bool,
        /// Compress the archive with gzip.
        #[arg(short = 'z', long)]
        gzip: bool,
    },
    /// Write the whole virtual disk, or one volume, as a raw image (holes kept as holes).
    #[command(
        after_help = "Examples:\n  vmdkrecover export web01.vmdk -o web01.raw\n  vmdkrecover export web01.vmdk VolGroup00/LogVol00 -o root.img"
    )]
    Export {
        #[command(flatten)]
        image: ImageArgs,
        /// A volume name (sda1, VG/LV, ...); omit for the whole first disk.
        volume: Option<String>,
        /// Output file, or - for standard output.
        #[arg(short = 'o', value_name = "FILE|-", required = true)]
        output: String,
        /// Replace an existing output file.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Mount a guest filesystem read-only with FUSE (foreground; Ctrl-C or fusermount -u to unmount).
    #[command(
        after_help = "Example:\n  mkdir /mnt/web01 && vmdkrecover mount web01.vmdk VolGroup00/LogVol00 /mnt/web01"
    )]
    Mount {
        #[command(flatten)]
        image: ImageArgs,
        /// The volume to mount (VG/LV, sda1, LABEL=x, ...).
        volume: String,
        /// An existing empty directory.
        mountpoint: PathBuf,
        /// Let other users see the mount (needs user_allow_other in /etc/fuse.conf for non-root).
        #[arg(long)]
        allow_other: bool,
    },
    /// Work with VMDK descriptor files.
    #[command(subcommand)]
    Descriptor(DescriptorCmd),
}

#[derive(Subcommand)]
enum DescriptorCmd {
    /// Copy a descriptor, changing only its extent file name(s): the restore procedure's hand edit, done safely.
    #[command(
        after_help = "Example:\n  vmdkrecover descriptor rewrite snap/web01.vmdk --extent /restore/web01-flat.vmdk -o /restore/web01.vmdk"
    )]
    Rewrite {
        /// The descriptor to copy (read-only).
        descriptor: PathBuf,
        /// New extent file name, one per extent line, in order.
        #[arg(long = "extent", required = true, value_name = "NEW-FLAT")]
        extents: Vec<String>,
        /// Where to write the new descriptor (must not exist).
        #[arg(short = 'o', value_name = "NEW-DESCRIPTOR")]
        output: PathBuf,
    },
    /// Show a descriptor's parsed contents.
    Show {
        /// The descriptor.
        descriptor: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Check that every extent is present with the declared size and that the parent chain is consistent.
    Check {
        /// The descriptor.
        descriptor: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    vmdkrecover::progress::set_quiet(cli.quiet);
    let result = match cli.command {
        Command::Info { image, json } => cmd::info::run(&image.into_opts(), json),
        Command::Ls {
            image,
            spec,
            long,
            recursive,
            json,
        } => cmd::ls::run(&image.into_opts(), &spec, long, recursive, json),
        Command::Cat { image, specs } => cmd::cat::run(&image.into_opts(), &specs),
        Command::Stat { image, spec, json } => cmd::stat::run(&image.into_opts(), &spec, json),
        Command::Find {
            image,
            spec,
            name,
            kind,
            newer_than,
            json,
        } => cmd::find::run(
            &image.into_opts(),
            &spec,
            name.as_deref(),
            kind.as_deref(),
            newer_than.as_deref(),
            json,
        ),
        Command::Cp {
            image,
            args,
            archive,
            force,
            no_clobber,
            recursive: _,
            verbose,
            threads,
            retries,
            salvage,
            salvage_in_place,
            json,
        } => cmd::cp::run(
            &image.into_opts(),
            &args,
            &cmd::cp::CopyOptions {
                archive,
                force,
                no_clobber,
                verbose,
                threads,
                retries,
                salvage,
                salvage_in_place,
                json,
            },
        ),
        Command::Tar {
            image,
            spec,
            output,
            force,
            gzip,
        } => cmd::tar::run(
            &image.into_opts(),
            &spec,
            &output,
            &cmd::tar::TarOptions { force, gzip },
        ),
        Command::Export {
            image,
            volume,
            output,
            force,
        } => cmd::export::run(&image.into_opts(), volume.as_deref(), &output, force),
        Command::Mount {
            image,
            volume,
            mountpoint,
            allow_other,
        } => cmd::mount::run(&image.into_opts(), &volume, &mountpoint, allow_other),
        Command::Descriptor(DescriptorCmd::Rewrite {
            descriptor,
            extents,
            output,
        }) => cmd::descriptor::rewrite(&descriptor, &extents, &output),
        Command::Descriptor(DescriptorCmd::Show { descriptor, json }) => {
            cmd::descriptor::show(&descriptor, json)
        }
        Command::Descriptor(DescriptorCmd::Check { descriptor }) => {
            cmd::descriptor::check(&descriptor)
        }
    };
    let code = cmd::finish(result);
    if std::env::var_os("VMDKRECOVER_IO_STATS").is_some() {
        // The kernel's own count of bytes this process read (all files, all layers).
        if let Ok(io) = std::fs::read_to_string("/proc/self/io") {
            let field = |k: &str| {
                io.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .unwrap_or("?")
                    .trim()
                    .to_string()
            };
            eprintln!(
                "vmdkrecover: io: {} bytes read in {} read calls",
                field("rchar:"),
                field("syscr:")
            );
        }
    }
    code
}
