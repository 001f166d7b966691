// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

interface IAavePoolLike {
    function supply(address asset, uint256 amount, address onBehalfOf, uint16 referralCode) external;

    function borrow(
        address asset,
        uint256 amount,
        uint256 interestRateMode,
        uint16 referralCode,
        address onBehalfOf
    ) external;
}

interface IMintableLike {
    function mint(address to, uint256 amount) external;

    function approve(address spender, uint256 amount) external returns (bool);
}

/// @title AaveBorrower
/// @notice One Aave v3 user for benchmarks: in its constructor it mints itself collateral
///         (MintableERC20), supplies it to the Pool and borrows for itself. A real position:
///         the Pool sees an ordinary user calling supply and borrow.
contract AaveBorrower {
    constructor(
        address pool,
        address collateral,
        uint256 supplyAmount,
        address debt,
        uint256 borrowAmount
    ) {
        IMintableLike(collateral).mint(address(this), supplyAmount);
        IMintableLike(collateral).approve(pool, supplyAmount);
        IAavePoolLike(pool).supply(collateral, supplyAmount, address(this), 0);
        if (borrowAmount > 0) {
            IAavePoolLike(pool).borrow(debt, borrowAmount, 2, 0, address(this));
        }
    }
}

/// @title AavePositionOpener
/// @notice Opens many Aave v3 positions in one transaction (one AaveBorrower per entry), so
///         a benchmark can create 10,000 users in a handful of blocks.
contract AavePositionOpener {
    event Opened(address indexed user);

    function open(
        address pool,
        address collateral,
        address debt,
        uint256[] calldata supplies,
        uint256[] calldata borrows
    ) external {
        require(supplies.length == borrows.length, "AavePositionOpener: length mismatch");
        for (uint256 i = 0; i < supplies.length; i++) {
            address user = address(new AaveBorrower(pool, collateral, supplies[i], debt, borrows[i]));
            emit Opened(user);
        }
    }
}
