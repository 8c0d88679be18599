//! The method enums' shared shape: [`MethodName`] and the `methods!` macro that declares one.

/// A service's method enum: its wire name.
pub trait MethodName: Copy + std::fmt::Debug + 'static {
    /// The wire name (`requestConnection`, `_ping`, ...).
    fn as_str(self) -> &'static str;
}

/// A method name that is not one of the service's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("method not found")]
pub struct UnknownMethod;

/// Declares a method enum with its wire names: `ALL`, `NAMES` (metric labels), a `const fn
/// as_str`, `FromStr`, `Display` and [`MethodName`].
macro_rules! methods {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every method, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// Every method's wire name, in declaration order (the `method` metric labels).
            pub const NAMES: &'static [&'static str] = &[$($text,)+];

            /// The wire name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl $crate::MethodName for $name {
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::UnknownMethod;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::UnknownMethod),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use methods;
