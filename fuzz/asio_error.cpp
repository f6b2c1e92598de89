// The Boost.Asio error categories that headers of the pure sources reference through
// core/async.hpp (declarations only under BOOST_ASIO_SEPARATE_COMPILATION). The harnesses
// link no Asio code otherwise; this one small implementation file satisfies the linker.
#include <boost/asio/impl/error.ipp>
