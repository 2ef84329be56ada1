// TFRecord framing, the container of TensorBoard event files: per record a little-endian uint64 length, the
// masked CRC-32C of those 8 bytes, the data, and the masked CRC-32C of the data. CRC-32C is the Castagnoli
// polynomial (iSCSI); the mask is TensorFlow's ((crc >> 15) | (crc << 17)) + 0xa282ead8.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace plm::trainer {

uint32_t crc32c(std::string_view bytes);
uint32_t masked_crc32c(std::string_view bytes);
// The bytes of one record holding `data`.
std::string tfrecord_frame(std::string_view data);

}  // namespace plm::trainer
