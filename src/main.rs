//! `vmdkrecover`: recover files from VMware virtual disks, read-only, without root.

use clap::{Args, CommandFactory, Parser, Subcommand};
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

/// Defines the command line twice from one text. `Cli`/`Command` parse it: each
/// command's arguments are built only for the command that runs (clap's `defer`;
/// building all of them cost every run about as much as listing a small
/// directory). `CliFull`/`CommandFull` are built whole, for `completions` and
/// `man`: with `defer`, clap adds the global options to a command before its own
/// ones, which would reorder the completion scripts.
macro_rules! command_line {
    (
        $(#[$cli_attr:meta])* struct { $($cli_fields:tt)* }
        $(#[$cmd_attr:meta])* enum { $($commands:tt)* }
    ) => {
        $(#[$cli_attr])*
        struct Cli {
            $($cli_fields)*
            #[command(subcommand)]
            command: Command,
        }

        $(#[$cli_attr])*
        #[allow(dead_code)] // only its `Command` is used, never a parsed value
        struct CliFull {
            $($cli_fields)*
            #[command(subcommand)]
            command: CommandFull,
        }

        $(#[$cmd_attr])*
        #[command(defer = true)]
        enum Command {
            $($commands)*
        }

        $(#[$cmd_attr])*
        #[allow(dead_code)]
        enum CommandFull {
            $($commands)*
        }
    };
}

// Options shared by every command that opens a VM's disks. (A `//` comment: a doc
// comment would become the `about` of every command that flattens these, over the
// command's own, once the command's arguments are deferred.)
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
    /// Read the extent or parent file a descriptor names OLD from NEW (a renamed restore copy); repeatable.
    #[arg(long = "extent-map", value_name = "OLD=NEW", value_parser = parse_extent_map)]
    extent_map: Vec<(String, PathBuf)>,
    /// Read a .vmdk that is neither a descriptor nor a VMDK extent as a raw disk.
    #[arg(long)]
    raw: bool,
}

// Reading options for commands that open several images (`versions`, `diff`); a
// `//` comment for the reason given at `ImageArgs`.
#[derive(Args, Clone)]
struct ReadArgs {
    /// Show the filesystems as they are on disk, without replaying journals in memory.
    #[arg(long)]
    no_journal: bool,
    /// Let extent and parent file names in a descriptor point outside its folder.
    #[arg(long)]
    allow_outside_dir: bool,
}

impl ReadArgs {
    fn into_opts(self) -> cmd::Common {
        cmd::Common {
            request: vmdkrecover::stack::OpenRequest {
                allow_outside_dir: self.allow_outside_dir,
                ..Default::default()
            },
            replay_journal: !self.no_journal,
        }
    }
}

fn parse_extent_map(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((old, new)) if !old.is_empty() && !new.is_empty() => {
            Ok((old.to_string(), PathBuf::from(new)))
        }
        _ => Err(format!("{s:?}: expected OLD=NEW")),
    }
}

impl ImageArgs {
    fn into_opts(self) -> cmd::Common {
        cmd::Common {
            request: vmdkrecover::stack::OpenRequest {
                image: self.image,
                extra_disks: self.disks,
                lvm_metadata: self.lvm_metadata,
                allow_outside_dir: self.allow_outside_dir,
                extent_map: self.extent_map,
                raw: self.raw,
            },
            replay_journal: !self.no_journal,
        }
    }
}

command_line! {
#[derive(Parser)]
#[command(name = "vmdkrecover", version, about = "Recover files from VMware virtual disks (VMDK -> partitions -> LVM2 -> ext2/3/4), read-only, without root", after_help = EXAMPLES)]
struct {
    /// No progress display and no summary line (errors and warnings are still printed).
    #[arg(short = 'q', long = "quiet", global = true)]
    quiet: bool,
    /// Retry a read of the image that fails with EIO, ETIMEDOUT or EAGAIN (a flaky NFS
    /// or SAN) this many times, with backoff from 20 ms doubling to 1 s; every read
    /// (metadata as well as file data) gets it.
    #[arg(long, value_name = "N", default_value_t = 0, global = true)]
    retries: u32,
}

#[derive(Subcommand)]
enum {
    /// Show the whole storage stack: disks, partitions, LVM, filesystems.
    #[command(after_help = "Example:\n  vmdkrecover info web01.vmdk --disk web01_1.vmdk")]
    Info {
        #[command(flatten)]
        image: ImageArgs,
        /// Machine-readable output (documented in README.md).
        #[arg(long)]
        json: bool,
    },
    /// List directories (or show files), like ls; globs are expanded inside the image.
    #[command(
        disable_help_flag = true,
        after_help = "Examples:\n  vmdkrecover ls -lh web01.vmdk VolGroup00/LogVol00:/etc\n  vmdkrecover ls -R web01.vmdk sda1:/\n  vmdkrecover ls -l web01.vmdk '/etc/*.conf' /boot        (globs expanded in the image, not on the host)\n  vmdkrecover ls --csv --checksum -R web01.vmdk /etc > etc.csv\n\nTimes are UTC and shown with their offset (+0000). Names starting with '.' are hidden unless -a or -A (--json and --csv list every entry)."
    )]
    Ls {
        #[command(flatten)]
        image: ImageArgs,
        /// VOLUME:PATH or guest paths; the paths may hold globs (*, ?, [...]).
        #[arg(required = true, value_name = "SPEC")]
        specs: Vec<String>,
        /// Long listing: mode, links, owner, group, size, mtime, symlink target.
        #[arg(short = 'l')]
        long: bool,
        /// Recurse into subdirectories.
        #[arg(short = 'R', long = "recursive")]
        recursive: bool,
        /// Sizes (and the total) in powers of 1024: 1.1K, 16K, 2.0M.
        #[arg(short = 'h', long = "human-readable")]
        human: bool,
        /// Show names starting with '.', and the entries . and ..
        #[arg(short = 'a', long = "all")]
        all: bool,
        /// Show names starting with '.', without . and ..
        #[arg(short = 'A', long = "almost-all")]
        almost_all: bool,
        /// List directories themselves, not their contents.
        #[arg(short = 'd', long = "directory")]
        directory: bool,
        /// How -l shows times: full-iso, long-iso, iso or +FORMAT (%Y %m %d %H %M %S %N %z %s %F %T); UTC.
        #[arg(long, value_name = "STYLE")]
        time_style: Option<String>,
        /// Show the SHA-256 of every regular file (like virt-ls --checksum).
        #[arg(long)]
        checksum: bool,
        /// One CSV row per entry: path,type,mode,nlink,uid,gid,size,mtime,target[,sha256] (like virt-ls --csv).
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        /// Machine-readable output (docs/json.md).
        #[arg(long)]
        json: bool,
        /// Print help.
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
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
        /// Follow a symlink (inside the guest) and show what it points to.
        #[arg(short = 'L', long = "dereference")]
        follow: bool,
        /// Print only these stat(1) directives: %n %N %s %b %a %A %f %F %u %U %g %G %h %i %t %T %x %X %y %Y %z %Z %w %W %% (UTC; %U/%G print numbers).
        #[arg(
            short = 'c',
            long = "format",
            value_name = "FORMAT",
            conflicts_with = "json"
        )]
        format: Option<String>,
        /// Machine-readable output (docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Search a tree by name, type, size or modification time, like GNU find.
    #[command(
        after_help = "Examples:\n  vmdkrecover find web01.vmdk VolGroup00/LogVol00:/etc --name '*.conf'\n  vmdkrecover find web01.vmdk / --type f --newer-than 2024-03-01T12:00:00+02:00\n  vmdkrecover find web01.vmdk /boot --type f --iname 'GRUB*' --print0 | xargs -0 -n1 vmdkrecover cat web01.vmdk\n\nPrinted paths start with the SPEC as typed (its VOLUME: prefix, or the guest path), so they can be pasted back into cat, cp or ls. DATE is ISO 8601 (2024-03-01, 2024-03-01 12:00, 2024-03-01T12:00:00Z, ...+02:00; UTC when no offset is given) or @EPOCH."
    )]
    Find {
        #[command(flatten)]
        image: ImageArgs,
        /// VOLUME:PATH or a guest path.
        spec: String,
        /// Only names matching this shell glob.
        #[arg(long, value_name = "GLOB")]
        name: Option<String>,
        /// Same, ignoring case.
        #[arg(long, value_name = "GLOB")]
        iname: Option<String>,
        /// Only these types: f file, d directory, l symlink, p fifo, s socket, c char device, b block device; comma list (f,d).
        #[arg(long = "type", value_name = "f|d|l|p|s|c|b")]
        kind: Option<String>,
        /// Size, rounded up to units, is more (+N), less (-N) or exactly N units: c bytes, w 2 bytes, b 512 (default), k, M, G.
        #[arg(long, value_name = "[+-]N[ckMG]", allow_hyphen_values = true)]
        size: Option<String>,
        /// Only entries modified after DATE.
        #[arg(long, value_name = "DATE")]
        newer_than: Option<String>,
        /// Only entries modified before DATE.
        #[arg(long, value_name = "DATE")]
        older_than: Option<String>,
        /// Descend at most N levels below SPEC (0: SPEC itself).
        #[arg(long, value_name = "N")]
        maxdepth: Option<usize>,
        /// End each path with NUL instead of a newline (for xargs -0), bytes as they are.
        #[arg(long, short = '0', conflicts_with = "json")]
        print0: bool,
        /// Machine-readable output (docs/json.md).
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
        /// Copy with this many threads (default: the number of CPUs, and 8 once the
        /// disk turns out to be far away, e.g. on NFS).
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
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
    /// Mount a guest filesystem read-only with FUSE (foreground; Ctrl-C, SIGTERM or fusermount3 -u unmounts).
    #[command(
        after_help = "Example:\n  mkdir /mnt/web01 && vmdkrecover mount web01.vmdk VolGroup00/LogVol00 /mnt/web01"
    )]
    Mount {
        #[command(flatten)]
        image: ImageArgs,
        /// The volume to mount (VG/LV, sda1, LABEL=x, ...), VOLUME:/dir for a subtree, or a guest path (/, /boot).
        volume: String,
        /// An existing empty directory.
        mountpoint: PathBuf,
        /// Let other users see the mount (needs user_allow_other in /etc/fuse.conf for non-root).
        #[arg(long)]
        allow_other: bool,
        /// Mount options, comma separated: allow_other, allow_root, ro (always read-only).
        #[arg(short = 'o', value_name = "OPTIONS")]
        options: Vec<String>,
    },
    /// Work with VMDK descriptor files.
    #[command(subcommand)]
    Descriptor(DescriptorCmd),
    /// Print a shell completion script (bash, zsh, fish) to standard output.
    #[command(
        after_help = "Examples:\n  vmdkrecover completions bash > /etc/bash_completion.d/vmdkrecover\n  vmdkrecover completions zsh > \"${fpath[1]}/_vmdkrecover\"\n  vmdkrecover completions fish > ~/.config/fish/completions/vmdkrecover.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output: vmdkrecover(1), or one command's.
    #[command(
        after_help = "Examples:\n  vmdkrecover man | man -l -\n  vmdkrecover man ls > vmdkrecover-ls.1"
    )]
    Man {
        /// A command (ls, find, mount, ...): its own page, vmdkrecover-COMMAND(1).
        command: Option<String>,
    },
    /// The state of one path in every image (e.g. every storage snapshot), grouped by content, newest first.
    #[command(
        after_help = "Examples:\n  vmdkrecover versions .snapshot/*/web01/web01.vmdk /etc/httpd/conf/httpd.conf\n  vmdkrecover versions --json snap1/vm.vmdk snap2/vm.vmdk VolGroup00/LogVol00:/etc\n\nA file's version is its content (sha256); a directory's is its whole tree (names,\ntypes, modes, owners, mtimes, xattrs, contents), and older versions list the paths\nthat differ from the newest. Images are read in parallel. A file is read once for\nall images that resolve it to the same bytes of the same unchanged host files\n(device, inode, size, mtime, ctime, and the same physical runs); --json lists them\nunder hashed and shortcut. Exit status 1 when some image could not be read\n(listed under \"could not read\")."
    )]
    Versions {
        /// IMAGE... followed by SPEC (a guest path or VOLUME:PATH).
        #[arg(required = true, num_args = 2.., value_name = "IMAGE... SPEC")]
        args: Vec<String>,
        #[command(flatten)]
        read: ReadArgs,
        /// Machine-readable output (docs/json.md).
        #[arg(long)]
        json: bool,
        /// Also take a file as unchanged, without reading it, when another image
        /// has it with the same inode number, size, mtime and ctime on the same
        /// volume. NOT EXACT: a file rewritten with its times put back looks
        /// unchanged. --json marks such images shortcut by "metadata".
        #[arg(long)]
        quick: bool,
    },
    /// What changed between two images (two snapshots of one VM), like virt-diff.
    #[command(
        after_help = "Examples:\n  vmdkrecover diff .snapshot/sv_daily.1/web01/web01.vmdk .snapshot/sv_daily.0/web01/web01.vmdk /etc\n  vmdkrecover diff --content a.vmdk b.vmdk VolGroup00/LogVol00:/\n\nLines: `+ PATH` only in IMAGE_B, `- PATH` only in IMAGE_A, `= PATH: what` changed\n(type, size, mode, owner, mtime, symlink target, device, xattrs; `content` with\n--content). SPEC defaults to the whole guest tree (/)."
    )]
    Diff {
        /// The older image.
        image_a: PathBuf,
        /// The newer image.
        image_b: PathBuf,
        /// What to compare (default: the guest's whole tree).
        spec: Option<String>,
        /// Also compare file contents (sha256).
        #[arg(long)]
        content: bool,
        #[command(flatten)]
        read: ReadArgs,
        /// Machine-readable output (docs/json.md).
        #[arg(long)]
        json: bool,
    },
}
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
    bytesource::raise_open_file_limit();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    vmdkrecover::progress::set_quiet(cli.quiet);
    bytesource::retry::set_retries(cli.retries);
    let result = match cli.command {
        Command::Info { image, json } => cmd::info::run(&image.into_opts(), json),
        Command::Ls {
            image,
            specs,
            long,
            recursive,
            human,
            all,
            almost_all,
            directory,
            time_style,
            checksum,
            csv,
            json,
            help: _,
        } => (|| {
            let opts = cmd::ls::LsOptions {
                long,
                recursive,
                json,
                csv,
                human,
                hidden: if all {
                    cmd::ls::Hidden::All
                } else if almost_all {
                    cmd::ls::Hidden::AlmostAll
                } else {
                    cmd::ls::Hidden::Hide
                },
                directory,
                checksum,
                time_style: match time_style {
                    Some(s) => cmd::TimeStyle::parse(&s)?,
                    None => cmd::TimeStyle::Default,
                },
            };
            cmd::ls::run(&image.into_opts(), &specs, &opts)
        })(),
        Command::Cat { image, specs } => cmd::cat::run(&image.into_opts(), &specs),
        Command::Stat {
            image,
            spec,
            follow,
            format,
            json,
        } => cmd::stat::run(&image.into_opts(), &spec, json, follow, format.as_deref()),
        Command::Find {
            image,
            spec,
            name,
            iname,
            kind,
            size,
            newer_than,
            older_than,
            maxdepth,
            print0,
            json,
        } => cmd::find::run(
            &image.into_opts(),
            &spec,
            &cmd::find::FindOptions {
                name,
                iname,
                kind,
                size,
                newer_than,
                older_than,
                maxdepth,
                print0,
                json,
            },
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
            options,
        } => cmd::mount::run(
            &image.into_opts(),
            &volume,
            &mountpoint,
            allow_other,
            &options,
        ),
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
        Command::Completions { shell } => {
            let mut c = CliFull::command();
            let mut out = std::io::stdout();
            clap_complete::generate(shell, &mut c, "vmdkrecover", &mut out);
            Ok(cmd::Outcome::default())
        }
        Command::Man { command } => (|| {
            let mut out = std::io::stdout();
            let top = CliFull::command();
            let page = match command {
                None => top,
                Some(name) => top
                    .find_subcommand(&name)
                    .ok_or_else(|| anyhow::anyhow!("man {name}: no such command"))?
                    .clone()
                    .display_name(format!("vmdkrecover-{name}"))
                    .bin_name(format!("vmdkrecover {name}")),
            };
            clap_mangen::Man::new(page).render(&mut out)?;
            Ok(cmd::Outcome::default())
        })(),
        Command::Versions {
            args,
            read,
            json,
            quick,
        } => {
            let mut args = args;
            let spec = args.pop().unwrap_or_default();
            let images: Vec<PathBuf> = args.into_iter().map(PathBuf::from).collect();
            cmd::versions::run(&read.into_opts(), &images, &spec, json, quick)
        }
        Command::Diff {
            image_a,
            image_b,
            spec,
            content,
            read,
            json,
        } => cmd::diff::run(
            &read.into_opts(),
            &image_a,
            &image_b,
            spec.as_deref(),
            content,
            json,
        ),
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
            let (by_fs, by_timing) = bytesource::far_marks();
            let (kernel, gave_up) = cmd::cp::kernel_copy_stats();
            eprintln!(
                "vmdkrecover: io: {} bytes read in {} read calls; input files marked far away: {by_fs} by filesystem type, {by_timing} by read speed; {kernel} bytes copied by the kernel, which left {gave_up} files to reads part-way",
                field("rchar:"),
                field("syscr:")
            );
        }
    }
    code
}
