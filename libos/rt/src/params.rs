//! [`component_params!`]: how a component reads the parameters uniklink's glue object bakes
//! into the image.

/// Declares a component's parameters and a struct that reads them.
///
/// Each parameter is a symbol `__uniklink_param_<component>_<name>` in `.rodata`, defined by
/// the glue object with the value the profile and manifest resolve to (`u32` and `u64`
/// little-endian, `bool` as one byte). The macro also defines each one weakly with the default
/// given here, so an image linked without uniklink's glue (GNU ld, lld, mold) still links and
/// runs. `u32` parameters read as `usize`, `u64` ones (durations are nanoseconds) as `u64`,
/// `bool` ones as `bool` (defaults `0` or `1`).
///
/// ```ignore
/// unik_rt::component_params! {
///     /// The parameters this image was linked with.
///     pub(crate) struct Params for "net" {
///         rx_ring_size: u32 = 256,
///         promiscuous: bool = 0,
///     }
/// }
/// let rx = Params::get().rx_ring_size;
/// ```
#[macro_export]
macro_rules! component_params {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident for $component:literal {
            $($field:ident: $ty:tt = $default:literal),* $(,)?
        }
    ) => {
        $($crate::component_params!(@define $component, $field, $ty, $default);)*

        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name {
            $(pub $field: $crate::component_params!(@rust $ty),)*
        }

        impl $name {
            $vis fn get() -> $name {
                $name {
                    $($field: $crate::component_params!(@read $component, $field, $ty),)*
                }
            }
        }
    };
    (@rust u32) => { usize };
    (@rust u64) => { u64 };
    (@rust bool) => { bool };
    (@define $component:literal, $field:ident, $ty:tt, $default:literal) => {
        ::core::arch::global_asm!(
            concat!(
                ".pushsection .rodata.__uniklink_param_", $component, "_", stringify!($field),
                ",\"a\",%progbits"
            ),
            concat!(".weak __uniklink_param_", $component, "_", stringify!($field)),
            concat!(".type __uniklink_param_", $component, "_", stringify!($field), ",%object"),
            concat!(
                ".size __uniklink_param_", $component, "_", stringify!($field), ", ",
                $crate::component_params!(@size $ty)
            ),
            concat!(".balign ", $crate::component_params!(@size $ty)),
            concat!("__uniklink_param_", $component, "_", stringify!($field), ":"),
            concat!($crate::component_params!(@directive $ty), " ", $default),
            ".popsection",
        );
    };
    (@size u32) => { "4" };
    (@size u64) => { "8" };
    (@size bool) => { "1" };
    (@directive u32) => { ".long" };
    (@directive u64) => { ".quad" };
    (@directive bool) => { ".byte" };
    (@read $component:literal, $field:ident, u32) => {{
        unsafe extern "C" {
            #[link_name = concat!("__uniklink_param_", $component, "_", stringify!($field))]
            static VALUE: u32;
        }
        // SAFETY: a 4-byte `u32`, defined weakly here or by the glue object.
        (unsafe { VALUE }) as usize
    }};
    (@read $component:literal, $field:ident, u64) => {{
        unsafe extern "C" {
            #[link_name = concat!("__uniklink_param_", $component, "_", stringify!($field))]
            static VALUE: u64;
        }
        // SAFETY: an 8-byte `u64`, defined weakly here or by the glue object.
        unsafe { VALUE }
    }};
    (@read $component:literal, $field:ident, bool) => {{
        unsafe extern "C" {
            #[link_name = concat!("__uniklink_param_", $component, "_", stringify!($field))]
            static VALUE: u8;
        }
        // SAFETY: one byte, defined weakly here or by the glue object.
        (unsafe { VALUE }) != 0
    }};
}
