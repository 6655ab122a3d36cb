//! Manifest budgets, which `build` and `run` enforce.
//!
//! The image size is the size of the image file as `build` wrote it: what gets shipped,
//! stored and loaded, headers and symbol table included. The size report's loadable size
//! (sum of PT_LOAD `p_memsz`) explains where the bytes go but is not what the budget checks.
//!
//! The boot time is from QEMU's launch to the end of the ready marker line, which the
//! library OS prints right before the app's `main`: what `run` measures on the host. Firmware
//! and QEMU's own start-up are included, since a user waits for them too.

use std::path::Path;
use std::time::Duration;

use uniklink_analyzer::report::render::bytes;
use uniklink_config::Budgets;

use crate::run::human_duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error(
        "image size budget exceeded: {image} is {}, budget {}, over by {}",
        bytes(*size),
        size_budget(*budget),
        bytes(size - budget)
    )]
    ImageSize {
        image: String,
        size: u64,
        budget: u64,
    },
    #[error(
        "boot time budget exceeded: {image} was ready after {}, budget {}, over by {}",
        human_duration(*ready),
        human_duration(*budget),
        human_duration(*ready - *budget)
    )]
    BootTime {
        image: String,
        ready: Duration,
        budget: Duration,
    },
    #[error(
        "boot time budget of {} not met: {image} never printed the ready marker",
        human_duration(*budget)
    )]
    NeverReady { image: String, budget: Duration },
}

fn file_name(image: &Path) -> String {
    image
        .file_name()
        .unwrap_or(image.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// `64 KiB (65,536 B)`, or just `65,537 B` when no binary unit divides it.
fn size_budget(n: u64) -> String {
    for (name, factor) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n != 0 && n.is_multiple_of(factor) {
            return format!("{} {name} ({})", n / factor, bytes(n));
        }
    }
    bytes(n)
}

/// Whether `budgets` hold a build with cargo profile `profile`; when they do not but have a
/// limit, the note that says so.
pub fn gate(budgets: &Budgets, profile: &str) -> Result<(), String> {
    let limited = budgets.image_size.is_some() || budgets.boot_time.is_some();
    match &budgets.profile {
        Some(gated) if limited && gated != profile => Err(format!(
            "the manifest's budgets gate the `{gated}` profile; this `{profile}` image is not \
             checked (`budgets: {{ profile: any }}` checks every profile)"
        )),
        _ => Ok(()),
    }
}

/// Checks the size of the image file `image`, `size` bytes long, against the budget.
pub fn check_image_size(budgets: &Budgets, image: &Path, size: u64) -> Result<(), BudgetError> {
    match budgets.image_size {
        Some(budget) if size > budget.bytes() => Err(BudgetError::ImageSize {
            image: file_name(image),
            size,
            budget: budget.bytes(),
        }),
        _ => Ok(()),
    }
}

/// Checks the time from launch to the ready marker against the budget; a boot that never
/// got ready misses it.
pub fn check_boot_time(
    budgets: &Budgets,
    image: &Path,
    ready: Option<Duration>,
) -> Result<(), BudgetError> {
    let Some(budget) = budgets.boot_time.map(|b| b.as_std()) else {
        return Ok(());
    };
    match ready {
        Some(ready) if ready > budget => Err(BudgetError::BootTime {
            image: file_name(image),
            ready,
            budget,
        }),
        Some(_) => Ok(()),
        None => Err(BudgetError::NeverReady {
            image: file_name(image),
            budget,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uniklink_config::ByteSize;

    fn budgets(size: Option<u64>, ms: Option<u64>) -> Budgets {
        Budgets {
            image_size: size.map(ByteSize),
            boot_time: ms.map(uniklink_config::Duration::from_millis),
            profile: Some(uniklink_config::BUDGET_PROFILE.to_owned()),
        }
    }

    #[test]
    fn budgets_gate_their_profile_and_say_so_for_another() {
        let release = budgets(Some(65_536), None);
        assert_eq!(gate(&release, "release"), Ok(()));
        let note = gate(&release, "dev").unwrap_err();
        assert!(
            note.contains("gate the `release` profile; this `dev` image is not checked"),
            "{note}"
        );
        let any = Budgets {
            profile: None,
            ..release.clone()
        };
        assert_eq!(gate(&any, "dev"), Ok(()));
        // Without a limit there is nothing to say.
        assert_eq!(gate(&budgets(None, None), "dev"), Ok(()));
    }

    #[test]
    fn image_size_message_gives_size_budget_and_excess() {
        let image = Path::new("/t/uniklink/hello-x86_64.elf");
        let error = check_image_size(&budgets(Some(65_536), None), image, 70_312).unwrap_err();
        assert_eq!(
            error.to_string(),
            "image size budget exceeded: hello-x86_64.elf is 70,312 B, budget 64 KiB (65,536 B), over by 4,776 B"
        );
        assert_eq!(
            check_image_size(&budgets(Some(65_536), None), image, 65_536),
            Ok(())
        );
        assert_eq!(
            check_image_size(&budgets(None, None), image, u64::MAX),
            Ok(())
        );
    }

    #[test]
    fn boot_time_is_met_exceeded_or_never_measured() {
        let image = Path::new("hello-x86_64.elf");
        let b = budgets(None, Some(50));
        assert_eq!(
            check_boot_time(&b, image, Some(Duration::from_micros(73_200)))
                .unwrap_err()
                .to_string(),
            "boot time budget exceeded: hello-x86_64.elf was ready after 73.2 ms, budget 50.0 ms, over by 23.2 ms"
        );
        assert_eq!(
            check_boot_time(&b, image, Some(Duration::from_millis(50))),
            Ok(())
        );
        assert_eq!(
            check_boot_time(&b, image, None).unwrap_err().to_string(),
            "boot time budget of 50.0 ms not met: hello-x86_64.elf never printed the ready marker"
        );
        assert_eq!(check_boot_time(&budgets(None, None), image, None), Ok(()));
    }
}
