// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title RebasingToken
/// @notice aToken-like test token: balances are shares scaled by an index, so `setIndex` moves
///         every balance at once without emitting a single event.
/// @dev balanceOf = shares * index / 1e36: the index has 18 decimals (1e18 = 1.0) and shares
///      carry 18 extra decimals, so minting 1 at index 2.0 credits 1, not 0 or 2 (balances
///      are rounded down once, when read).
contract RebasingToken {
    uint256 internal constant INDEX_ONE = 1e18;
    uint256 internal constant SHARE_SCALE = 1e36; // INDEX_ONE * 1e18 extra share decimals

    string public name;
    string public symbol;
    uint8 public immutable decimals;
    /// @notice Balance per share unit, 18 decimals (starts at 1.0).
    uint256 public index = INDEX_ONE;
    uint256 public totalShares;

    mapping(address => uint256) public sharesOf;

    event Transfer(address indexed from, address indexed to, uint256 value);

    constructor(string memory name_, string memory symbol_, uint8 decimals_) {
        name = name_;
        symbol = symbol_;
        decimals = decimals_;
    }

    function balanceOf(address account) external view returns (uint256) {
        return (sharesOf[account] * index) / SHARE_SCALE;
    }

    function totalSupply() external view returns (uint256) {
        return (totalShares * index) / SHARE_SCALE;
    }

    function mint(address to, uint256 amount) external {
        uint256 shares = _sharesFor(amount);
        sharesOf[to] += shares;
        totalShares += shares;
        emit Transfer(address(0), to, amount);
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        uint256 shares = _sharesFor(amount);
        require(sharesOf[msg.sender] >= shares, "Rebasing: transfer exceeds balance");
        sharesOf[msg.sender] -= shares;
        sharesOf[to] += shares;
        emit Transfer(msg.sender, to, amount);
        return true;
    }

    /// @notice Rebases every balance. Deliberately emits no event at all, like interest
    ///         accruing on an aToken: only a full re-read of balances can notice it.
    function setIndex(uint256 newIndex) external {
        require(newIndex > 0, "Rebasing: zero index");
        index = newIndex;
    }

    /// @dev Rounded up, so the balance credited (rounded down) is exactly `amount`.
    function _sharesFor(uint256 amount) internal view returns (uint256) {
        return (amount * SHARE_SCALE + index - 1) / index;
    }
}
